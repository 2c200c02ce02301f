import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import type { Capabilities } from '../../server/contracts/runner';
import { cachedModels } from './model-cache';

const run = promisify(execFile);

/**
 * Lists NVIDIA GPUs with `nvidia-smi` (name, memory in MiB, compute capability); an empty list
 * when the tool is missing or fails, as on CPU machines.
 */
export async function detectGpus(): Promise<Capabilities['gpus']> {
  try {
    const { stdout } = await run('nvidia-smi', ['--query-gpu=name,memory.total,compute_cap', '--format=csv,noheader,nounits'], { timeout: 10_000 });
    return stdout.trim().split('\n').filter(Boolean).map((line) => {
      const [name, memoryMiB, computeCapability] = line.split(',').map((part) => part.trim());
      return { name: name!, memoryBytes: Number(memoryMiB) * 1024 ** 2, computeCapability };
    });
  } catch {
    return [];
  }
}

/** Describes what this runner offers: GPUs, bf16 support, memory, free disk and cached base models. */
export async function detectCapabilities(options: { cacheDir: string; memoryGb?: number }): Promise<Capabilities> {
  const gpus = await detectGpus();
  await fs.mkdir(options.cacheDir, { recursive: true });
  const disk = await fs.statfs(options.cacheDir);
  return {
    cpuOnly: gpus.length === 0,
    gpus,
    // bfloat16 arithmetic needs compute capability 8.0 (Ampere) or newer.
    bf16: gpus.length > 0 && gpus.every((gpu) => Number(gpu.computeCapability ?? 0) >= 8),
    hostname: os.hostname(),
    memoryBytes: options.memoryGb ? options.memoryGb * 1e9 : os.totalmem(),
    freeDiskBytes: disk.bavail * disk.bsize,
    cachedBaseModels: await cachedModels(options.cacheDir),
  };
}
