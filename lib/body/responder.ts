import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { createDebug } from '../core/debug';
import { type ErrorHandler, failStream } from '../core/errors';
import {
  type AnyRequest,
  type AnyResponse,
  isBodyless,
  isHttp2,
  isResponseGone,
  type ResponseLike,
  type StreamContext,
} from '../core/response';
import { type ChunkSource, pump } from '../core/write-loop';
import { ResponseWriter, type StreamOutcome } from '../core/writer';
import { sendFile } from './file';
import { type BodyPlan, planBody, type StreamPlan } from './plan';
import { readableSource } from './readable-source';

const debug = createDebug('stream');

type Next = (error?: unknown) => void;

/** What one call of `res.stream()` was given, checked: see `StreamOptions`. */
export interface ResponderOptions {
  readonly onError?: ErrorHandler | undefined;
  readonly proxyBuffering?: boolean | undefined;
}

/** Marks a response that a body is (or was) streamed to: a second call is a programmer error. */
const STREAMED = Symbol('express-streaming.streamed');

/**
 * Sends one body; resolves with the outcome and never rejects. Whatever goes wrong inside — a header
 * Node refuses, a path `send` cannot encode — still ends in a response: a status before the head, a
 * visible truncation after it. A second call on one response throws a `TypeError` at once.
 */
export function respond(
  res: ResponseLike,
  body: unknown,
  options: ResponderOptions,
  next: Next | undefined,
): Promise<StreamOutcome> {
  const marked = res as ResponseLike & { [STREAMED]?: true };
  if (marked[STREAMED]) {
    throw new TypeError(
      'res.stream: a body is already being sent on this response; call res.stream() once per response',
    );
  }
  marked[STREAMED] = true;
  const responder = new Responder(res, options, next);
  return responder.send(body).catch((error: unknown) => responder.failUnexpectedly(error));
}

/** One call of `res.stream()`: what was decided about the response, and how to fail it. */
class Responder {
  readonly #writer: ResponseWriter;
  readonly #ctx: StreamContext;
  readonly #options: ResponderOptions;
  readonly #next: Next | undefined;
  readonly #hadContentType: boolean;

  constructor(res: ResponseLike, options: ResponderOptions, next: Next | undefined) {
    this.#writer = new ResponseWriter(res);
    this.#ctx = {
      signal: this.#writer.signal,
      req: res.req as AnyRequest,
      res: res as unknown as AnyResponse,
    };
    this.#options = options;
    this.#next = next;
    this.#hadContentType = res.hasHeader('content-type');
  }

  get #res(): ResponseLike {
    return this.#writer.res;
  }

  async send(body: unknown): Promise<StreamOutcome> {
    let plan: BodyPlan;
    try {
      plan = planBody(body);
    } catch (error) {
      return this.#fail(error);
    }
    if (isResponseGone(this.#res)) {
      this.#writer.detach();
      disposeUnstarted(plan);
      return 'aborted';
    }
    const refusal = this.#refusal(plan);
    if (refusal !== undefined) {
      disposeUnstarted(plan);
      return this.#fail(refusal);
    }
    switch (plan.kind) {
      case 'empty':
        return this.#writer.end();
      case 'whole':
        return this.#sendWhole(plan.bytes, plan.type);
      case 'file':
        return this.#sendFile(plan);
      case 'stream':
        return this.#sendStream(plan);
    }
  }

  /** Why the response, as the app left it, cannot take this body; `undefined` when it can. */
  #refusal(plan: BodyPlan): TypeError | undefined {
    if (this.#res.writableEnded) return new TypeError('res.stream: the response has already ended');
    if (!this.#res.headersSent) return undefined;
    const ownHead =
      plan.kind === 'file'
        ? 'file()'
        : plan.kind === 'stream' && plan.response
          ? 'a fetch Response'
          : undefined;
    if (ownHead === undefined) return undefined;
    return new TypeError(
      `res.stream: ${ownHead} sets the response's status and headers, but the head was already sent; ` +
        'send it before writing anything',
    );
  }

  /** Ends whatever `send()` left hanging with an error it did not expect; never throws. */
  failUnexpectedly(error: unknown): StreamOutcome {
    debug('unexpected failure: %s', error);
    try {
      return this.#fail(error);
    } catch (thrown) {
      debug('failing the response failed too: %s', thrown);
      this.#writer.abandon(thrown);
      this.#res.destroy();
      return 'errored';
    }
  }

  #sendWhole(bytes: string | Uint8Array, type: string): Promise<StreamOutcome> {
    // After the app's own res.write() or writeHead(), the bytes follow what it wrote.
    if (!this.#res.headersSent) {
      this.#setDefaultType(type);
      this.#res.setHeader(
        'Content-Length',
        typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength,
      );
    }
    if (this.#stripBodyHeadersIfBodyless()) return this.#writer.end();
    return this.#writer.end(bytes);
  }

  #sendFile(plan: Extract<BodyPlan, { kind: 'file' }>): Promise<StreamOutcome> {
    return new Promise<StreamOutcome>((resolve) => {
      // send answers HEAD, 304 and 416 itself; the writer tells when it did, or when the client left.
      this.#writer.settled().then(resolve);
      sendFile(this.#res.req as unknown as Readable, this.#res as unknown as ServerResponse, plan.file, {
        onStream: (stream) => resolve(this.#pump(readableSource(stream, 'a chunk of the file'))),
        onError: (error) => resolve(this.#fail(error)),
      });
    });
  }

  #sendStream(plan: StreamPlan): Promise<StreamOutcome> {
    const res = this.#res;
    if (!res.headersSent) {
      if (plan.response) applyResponseHead(res, plan.response);
      this.#setDefaultType(plan.type);
      if (plan.length !== undefined) res.setHeader('Content-Length', plan.length);
      // A buffering proxy (nginx by default) would hold a body made over time until its end.
      if (plan.overTime && !this.#options.proxyBuffering && !res.hasHeader('x-accel-buffering')) {
        res.setHeader('X-Accel-Buffering', 'no');
      }
    }
    if (this.#stripBodyHeadersIfBodyless()) {
      plan.dispose();
      return this.#writer.end();
    }
    let source: ChunkSource;
    try {
      source = plan.open(this.#ctx);
    } catch (error) {
      plan.dispose();
      return Promise.resolve(this.#fail(error));
    }
    return this.#pump(source);
  }

  async #pump(source: ChunkSource): Promise<StreamOutcome> {
    try {
      return await pump(this.#writer, source);
    } catch (error) {
      source.release(error);
      return this.#fail(error);
    }
  }

  #fail(error: unknown): StreamOutcome {
    if (!this.#res.headersSent) this.#forgetBodyHeaders();
    return failStream(this.#writer, this.#ctx, error, this.#options.onError, this.#next);
  }

  /** The error handler answers with a body of its own: drop what described ours (the app's type stays). */
  #forgetBodyHeaders(): void {
    const res = this.#res;
    for (const name of ['content-length', 'content-range']) res.removeHeader(name);
    if (!this.#hadContentType) res.removeHeader('content-type');
  }

  #setDefaultType(type: string | undefined): void {
    if (type !== undefined && !this.#res.hasHeader('content-type')) this.#res.setHeader('Content-Type', type);
  }

  /** HEAD keeps its headers (it mirrors GET); 204 and 304 carry none that describe a body. */
  #stripBodyHeadersIfBodyless(): boolean {
    const res = this.#res;
    if (!isBodyless(res)) return false;
    if (res.req.method !== 'HEAD' && !res.headersSent) {
      for (const name of ['content-type', 'content-length', 'transfer-encoding']) res.removeHeader(name);
    }
    return true;
  }
}

/** A producer that will never be started is let go of (only stream plans hold one). */
function disposeUnstarted(plan: BodyPlan): void {
  if (plan.kind === 'stream') plan.dispose();
}

function applyResponseHead(res: ResponseLike, head: NonNullable<StreamPlan['response']>): void {
  res.statusCode = head.status;
  if (head.statusText && !isHttp2(res.req))
    (res as unknown as ServerResponse).statusMessage = head.statusText;
  for (const [name, value] of head.headers) res.setHeader(name, value);
}
