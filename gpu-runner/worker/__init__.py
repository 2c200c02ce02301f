"""Python worker of the adapter marketplace's GPU runner.

Run it from `gpu-runner/` as `python -m worker <command>`; docs/worker-contract.md
defines the `run` command's job spec and the events it prints.
"""
