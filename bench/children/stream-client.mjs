// Streaming-body client child: GETs `bytes` from the server `runs` times in a row over loopback,
// counting the body bytes, and reports the time from request to the body's end for each run.
import http from 'node:http';

function fetchOnce(port, bytes, timeLimitMs) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    let received = 0;
    const req = http.get({ host: '127.0.0.1', port, path: `/?bytes=${bytes}`, agent: false }, (res) => {
      res.on('data', (chunk) => {
        received += chunk.length;
      });
      res.on('end', () => finish(res.statusCode === 200 ? undefined : `status ${res.statusCode}`));
      res.on('error', (error) => finish(error.message));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish(`no end within ${timeLimitMs} ms`);
    }, timeLimitMs);
    req.on('error', (error) => finish(error.message));
    let done = false;
    function finish(error) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ received, ms: Number(process.hrtime.bigint() - started) / 1e6, error });
    }
  });
}

process.on('message', async (message) => {
  if (message.type === 'get') {
    const results = [];
    for (let i = 0; i < message.runs; i++) {
      results.push(await fetchOnce(message.port, message.bytes, message.timeLimitMs));
    }
    process.send({ type: 'results', results });
  } else if (message.type === 'exit') {
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
