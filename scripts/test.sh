#!/usr/bin/env bash
# Runs every test suite against real parts: the Postgres server at 127.0.0.1:5432 (a fresh
# adapters_test database), a fresh SeaweedFS, the production build of the app, real runner
# processes and the real Python worker on a tiny randomly initialised Llama.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --browser

# TEST_S3_PORT, TEST_APP_PORT and TEST_DATABASE_URL let a second checkout run its tests
# beside this one.
export TEST_DATA=.test-data
export DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/adapters_test}
s3_port=${TEST_S3_PORT:-8433}
export S3_ENDPOINT=http://127.0.0.1:$s3_port S3_BUCKET=adapters-test S3_ACCESS_KEY_ID=test-access-key S3_SECRET_ACCESS_KEY=test-secret-key
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Tests that call server modules directly (storage checks) read the same validated settings.
export NEXTAUTH_SECRET=test-secret-for-integration-tests-only

scripts/stop-pid.sh "$TEST_DATA/seaweedfs/weed.pid" || true
rm -rf "$TEST_DATA"
mkdir -p "$TEST_DATA"
trap 'scripts/stop-pid.sh "$TEST_DATA/seaweedfs/weed.pid"' EXIT

echo "==> starting SeaweedFS on 127.0.0.1:$s3_port"
scripts/seaweedfs.sh "$TEST_DATA/seaweedfs" "$s3_port" "$S3_BUCKET" "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" >/dev/null

echo "==> creating a fresh test database"
node scripts/reset-database.mjs "$DATABASE_URL"

echo "==> preparing the base model and the tiny test model"
scripts/prepare-base-model.sh
(cd gpu-runner && ../.venv/bin/python -m worker make-tiny --out "../$TEST_DATA/tiny-llama" --tokenizer-from ../.data/models/smollm2-135m-instruct)

# Arguments pick vitest files (`npm test -- tests/integration/flow.test.ts`); pytest then runs
# only with TEST_PYTEST=1, and TEST_SKIP_BUILD=1 reuses the last build when the app is unchanged.
if [ $# -eq 0 ] || [ "${TEST_PYTEST:-}" = 1 ]; then
  echo "==> worker tests (pytest)"
  (cd gpu-runner && ../.venv/bin/python -m pytest worker/tests -q)
fi

if [ "${TEST_SKIP_BUILD:-}" != 1 ] || [ ! -f .next/BUILD_ID ] || [ ! -f .open-next/server-functions/default/index.mjs ]; then
  # The Lambda bundle first: OpenNext builds the app in its standalone mode into .next, which
  # the plain build below then replaces for `next start`.
  echo "==> building the Lambda bundle (OpenNext)"
  node infra/build-lambda.mjs >"$TEST_DATA/build-lambda.log" 2>&1 || { tail -50 "$TEST_DATA/build-lambda.log"; exit 1; }
  echo "==> building the app"
  npx next build >"$TEST_DATA/build.log" 2>&1 || { tail -50 "$TEST_DATA/build.log"; exit 1; }
fi

echo "==> unit, integration and browser tests (vitest)"
npx vitest run "$@"
