// Loads a Lambda function bundle and invokes its handler the way the Node.js Lambda runtime
// does for a function URL in RESPONSE_STREAM mode, then prints one JSON line per invocation.
//   node tests/setup/lambda-invoke.mjs BUNDLE_DIR < events.json
// stdin contains a JSON array of function URL events (payload format 2.0). Each output line is
// { statusCode, headers, cookies, body } with the body as UTF-8 text.
//
// Only the runtime's glue is reproduced here: the `awslambda` global that the runtime provides
// (streamifyResponse marks a handler as streaming), a response stream with setContentType,
// and the function URL's decoding of the "http integration response" that the handler writes
// (a JSON prelude with status and headers, 8 zero bytes, then the body). Everything else is
// the bundle's own code. The working directory is the bundle, as /var/task is on Lambda.
import { Writable } from 'node:stream';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');

globalThis.awslambda = {
  streamifyResponse(handler) {
    handler[STREAMING] = 'response';
    return handler;
  },
};

/** A Writable that collects the bytes the handler streams, as the runtime forwards them. */
class ResponseStream extends Writable {
  chunks = [];
  contentType = null;

  setContentType(type) {
    this.contentType = type;
  }

  _write(chunk, _encoding, callback) {
    this.chunks.push(Buffer.from(chunk));
    callback();
  }
}

/** Splits an http integration response into its prelude and body, as the function URL does. */
function decodeIntegrationResponse(bytes) {
  const separator = bytes.indexOf(Buffer.alloc(8));
  if (separator < 0) throw new Error(`the handler wrote no prelude separator (8 zero bytes) in its ${bytes.length}-byte response`);
  const prelude = JSON.parse(bytes.subarray(0, separator).toString('utf8'));
  return { statusCode: prelude.statusCode, headers: prelude.headers ?? {}, cookies: prelude.cookies ?? [], body: bytes.subarray(separator + 8).toString('utf8') };
}

async function invoke(handler, event, requestNumber) {
  const stream = new ResponseStream();
  const finished = new Promise((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
  });
  const context = {
    callbackWaitsForEmptyEventLoop: true,
    functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
    awsRequestId: `test-request-${requestNumber}`,
    getRemainingTimeInMillis: () => 30_000,
  };
  await handler(event, stream, context);
  // The runtime ends the stream when the handler returns without ending it.
  if (!stream.writableEnded) stream.end();
  await finished;
  if (stream.contentType !== 'application/vnd.awslambda.http-integration-response') {
    throw new Error(`the handler set content type ${stream.contentType}; a function URL expects application/vnd.awslambda.http-integration-response`);
  }
  return decodeIntegrationResponse(Buffer.concat(stream.chunks));
}

const bundleDir = path.resolve(process.argv[2] ?? '.');
process.chdir(bundleDir);
let input = '';
for await (const chunk of process.stdin) input += chunk;
const events = JSON.parse(input);

const { handler } = await import(pathToFileURL(path.join(bundleDir, 'index.mjs')).href);
if (handler?.[STREAMING] !== 'response') throw new Error(`${bundleDir}/index.mjs exports no streaming handler`);
for (const [index, event] of events.entries()) {
  process.stdout.write(`${JSON.stringify(await invoke(handler, event, index + 1))}\n`);
}
// Open database connections would keep the process alive, as they keep a Lambda environment warm.
process.exit(0);
