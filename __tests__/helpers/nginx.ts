import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './servers';
import { until, untilAsync } from './wait';

export function findNginx(): string | undefined {
  const candidates = [process.env.NGINX_PATH, '/usr/sbin/nginx', '/usr/bin/nginx'];
  return candidates.find((p): p is string => typeof p === 'string' && fs.existsSync(p));
}

export interface Nginx {
  readonly port: number;
  /** What nginx wrote to its error log (upstream failures show up here). */
  errorLog(): string;
  stop(): Promise<void>;
}

/**
 * A real nginx in front of `upstreamPort`, on a free port, with its config, logs and temp files in a
 * fresh temp dir. `location` adds directives to the proxied location; without any, nginx runs with
 * its defaults (proxy_buffering on, HTTP/1.0 to the upstream).
 */
export async function startNginx(binary: string, upstreamPort: number, location = ''): Promise<Nginx> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'express-streaming-nginx-'));
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    conf,
    `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://127.0.0.1:${upstreamPort};
      ${location}
    }
  }
}
`,
  );
  execFileSync(binary, ['-t', '-q', '-p', dir, '-c', conf], { stdio: 'pipe' });
  const child: ChildProcess = spawn(binary, ['-p', dir, '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await until(() => fs.existsSync(path.join(dir, 'nginx.pid')), 'nginx to start', 5000);
  await untilAsync(() => accepts(port), `nginx to listen on ${port}`, 2500);
  return {
    port,
    errorLog: () => fs.readFileSync(path.join(dir, 'error.log'), 'utf8'),
    async stop() {
      child.kill('SIGTERM');
      await exited;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts a connection on `port` now. */
function accepts(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
