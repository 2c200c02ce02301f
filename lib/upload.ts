/** Browser-side helpers for direct-to-S3 uploads through presigned URLs. */

export async function sha256Hex(data: ArrayBuffer): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** PUTs bytes to a presigned URL, reporting progress as a fraction from 0 to 1. */
export function putWithProgress(url: string, body: ArrayBuffer, onProgress: (fraction: number) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('PUT', url);
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded / event.total);
    request.onload = () => (request.status >= 200 && request.status < 300 ? resolve() : reject(new Error(`upload failed with HTTP ${request.status}: ${request.responseText.slice(0, 300)}`)));
    request.onerror = () => reject(new Error('upload failed: the storage server could not be reached'));
    request.send(body);
  });
}
