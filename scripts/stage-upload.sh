#!/usr/bin/env bash
# Uploads a file of any size into a queued image by a staged upload (README: Large images):
# asks the API for part URLs, PUTs each part straight to S3 (no AWS credentials needed),
# completes, and waits until the task that checks the data has made the image active.
#
#   OS_IMAGE_URL=https://<api> OS_TOKEN=<token> scripts/stage-upload.sh <image id> <file>
#
# Needs curl, jq and dd. Memory: one part at a time (8 MiB for images up to 8 GiB).
set -euo pipefail

image=${1:?usage: stage-upload.sh <image id> <file>}
file=${2:?usage: stage-upload.sh <image id> <file>}
: "${OS_IMAGE_URL:?set OS_IMAGE_URL to the image endpoint}" "${OS_TOKEN:?set OS_TOKEN to a token}"
api=${OS_IMAGE_URL%/}

call() { # method path [json body]
  curl -sS --fail-with-body -X "$1" -H "X-Auth-Token: $OS_TOKEN" -H 'Accept: application/json' \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$api$2"
}

size=$(stat -c %s "$file")
upload=$(call POST "/v2/images/$image/file/parts" "{\"size\": $size}")
part_size=$(jq -r .part_size <<<"$upload")
count=$(jq '.parts | length' <<<"$upload")

jq -r '.parts[] | "\(.part_number) \(.url)"' <<<"$upload" | while read -r number url; do
  # The presigned URL is the credential; S3 wants each part's exact length, so the part is
  # read into curl (not streamed chunked).
  dd if="$file" bs=1M iflag=skip_bytes,count_bytes status=none \
     skip=$(( (number - 1) * part_size )) count="$part_size" |
    curl -sS --fail-with-body -X PUT -H 'Content-Type:' --data-binary @- -o /dev/null "$url"
  echo "part $number/$count sent" >&2
done

task=$(call POST "/v2/images/$image/file/complete" "$(jq -c '{upload_id}' <<<"$upload")")
task_id=$(jq -r .id <<<"$task")
echo "completed; task $task_id checks the data" >&2
while :; do
  task=$(call GET "/v2/tasks/$task_id")
  case $(jq -r .status <<<"$task") in
    success) jq -r '"image \(.result.image_id) is active"' <<<"$task"; exit 0 ;;
    failure) jq -r '"failed: \(.message)"' <<<"$task" >&2; exit 1 ;;
  esac
  sleep 2
done
