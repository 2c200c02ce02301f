#!/usr/bin/env bash
# Brings the whole product up on its embedded defaults: SeaweedFS as S3, the app on PGlite
# (persisted under .data/), one runner, the SmolLM2 base model and the PubMedQA demo, then
# starts a short demo fine-tune. Ctrl+C stops everything; data stays in .data/.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-3000}
S3_PORT=${S3_PORT:-8333}
export APP_URL="http://127.0.0.1:$PORT"

scripts/setup.sh
mkdir -p .data

export S3_ENDPOINT="http://127.0.0.1:$S3_PORT" S3_BUCKET=adapters S3_ACCESS_KEY_ID=quickstart-key
[ -f .data/s3-secret ] || (umask 077; openssl rand -hex 24 > .data/s3-secret)
[ -f .data/nextauth-secret ] || (umask 077; openssl rand -hex 32 > .data/nextauth-secret)
export S3_SECRET_ACCESS_KEY=$(cat .data/s3-secret) NEXTAUTH_SECRET=$(cat .data/nextauth-secret)
export NEXTAUTH_URL="$APP_URL" PGLITE_DIR=.data/pglite HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
unset DATABASE_URL

# Job control puts each background process in its own group, so cleanup stops the
# group: npx, next-server, the runner and its Python worker alike.
set -m
pids=()
cleanup() {
  # SIGINT, not SIGTERM: on SIGTERM a runner drains (checkpoints the job and gives it back),
  # which can take a minute; Ctrl+C should stop everything at once.
  for pid in "${pids[@]}"; do kill -INT -- "-$pid" 2>/dev/null || true; done
  scripts/stop-pid.sh .data/seaweedfs/weed.pid
}
# The port check comes before the cleanup trap, so a second quickstart that gives up here
# leaves the running one's SeaweedFS alone.
if curl -s -o /dev/null "$APP_URL"; then
  echo "port $PORT is already in use (another quickstart?); stop that process first. A second instance needs its own checkout and other ports: PORT=3001 S3_PORT=8334 npm run quickstart" >&2
  exit 1
fi

trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/stop-pid.sh .data/seaweedfs/weed.pid
echo "==> starting SeaweedFS (S3) on 127.0.0.1:$S3_PORT"
scripts/seaweedfs.sh .data/seaweedfs "$S3_PORT" "$S3_BUCKET" "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" >/dev/null

scripts/prepare-base-model.sh

echo "==> building the app"
npx next build >.data/build.log 2>&1 || { tail -40 .data/build.log; exit 1; }

echo "==> starting the app on $APP_URL (PGlite database in .data/pglite)"
npx next start -p "$PORT" -H 127.0.0.1 >.data/app.log 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -sf "$APP_URL/api/health" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { tail -30 .data/app.log; exit 1; }
  sleep 0.5
done
curl -sf "$APP_URL/api/health" >/dev/null || { echo "the app did not become healthy; see .data/app.log" >&2; exit 1; }

echo "==> seeding: demo user, base model, PubMedQA task and data set, a demo fine-tune"
seed=$(npx tsx scripts/seed.ts)
job=$(node -e 'console.log(JSON.parse(process.argv[1]).jobId)' "$seed")

echo "==> starting a runner (worker logs in .data/runner.log)"
RUNNER_TOKEN=$(cat .data/runner-token) npx tsx gpu-runner/src/main.ts >.data/runner.log 2>&1 &
pids+=($!)

cat <<TEXT

The adapter marketplace is running at $APP_URL

  Sign in as demo@example.com with password demo-password, then:
  - open $APP_URL/jobs/$job to watch the demo fine-tune of SmolLM2-135M-Instruct
    on PubMedQA (10 steps on the CPU, a few minutes; its loss curve updates live). When it succeeds,
    an evaluation job scores the base model and the adapter on 50 PubMedQA test items;
  - once that job has succeeded (the pages below answer "not found" until then):
    $APP_URL/demo/pubmedqa-demo shows the published adapter, its files and lineage,
    and $APP_URL/leaderboard/pubmedqa base vs adapter accuracy;
  - open $APP_URL/finetune to upload .data/demo/pubmedqa-train.jsonl (or your own
    JSONL) and start another fine-tune.
  The CLI: npm run cli -- login --email demo@example.com --password demo-password --url $APP_URL

Logs: .data/app.log, .data/runner.log. Press Ctrl+C to stop.
TEXT
wait "${pids[0]}"
