import { fileURLToPath } from 'node:url';
import { createApp } from './app';

const app = createApp({ dir: fileURLToPath(new URL('.', import.meta.url)) });
const port = Number(process.env.PORT ?? 3000);
const server = app.listen(port, () => {
  console.log(`express-streaming example app listening on http://localhost:${port}`);
  console.log('  /            the counter page (Server-Sent Events in your browser)');
  console.log('  /counter     the counter stream itself');
  console.log('  /range?limit=5, /rows, /clock, /tokens, /report.csv');
});

// Graceful shutdown: clients get a jittered retry and reconnect elsewhere.
process.on('SIGTERM', () => {
  void app.sse.closeAll({ retryMs: 5000 }).then(() => server.close());
});
