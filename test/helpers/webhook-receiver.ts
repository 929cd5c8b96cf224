import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A webhook receiver on 127.0.0.1: what it was sent, parsed, and the URL to send to. */
export interface WebhookReceiver {
  /** Its URL, with a path that stands for a token (output must not show it). */
  readonly url: string;
  /** The bodies received, in order, as text. */
  readonly bodies: string[];
  /** The bodies parsed as JSON. */
  json(): unknown[];
  close(): Promise<void>;
}

/**
 * Start a receiver that answers each request with `answer` (200 "ok" by default; one that never
 * answers stands for a hung webhook). Close it in `after` or a `finally`.
 */
export async function webhookReceiver(answer: (res: http.ServerResponse) => void = (res) => res.end('ok')): Promise<WebhookReceiver> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      bodies.push(body);
      answer(res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hooks/s3cret`,
    bodies,
    json: () => bodies.map((b) => JSON.parse(b) as unknown),
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** A URL on 127.0.0.1 where nothing listens: a port the system just gave out and took back. */
export async function deadWebhookUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/hooks/s3cret`;
}
