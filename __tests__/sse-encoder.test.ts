import { createParser, type EventSourceMessage } from 'eventsource-parser';
import fc from 'fast-check';
import { defaultSerialize, encodeComment, encodeEvent, encodeRetry, isSseEvent, type SseEvent } from '../lib';

interface Parsed {
  events: EventSourceMessage[];
  comments: string[];
  retries: number[];
  errors: unknown[];
}

/** Feeds wire text to a spec parser (eventsource-parser v3) and collects everything it reports. */
function parse(text: string): Parsed {
  const parsed: Parsed = { events: [], comments: [], retries: [], errors: [] };
  const parser = createParser({
    onEvent: (event) => parsed.events.push(event),
    onComment: (comment) => parsed.comments.push(comment),
    onRetry: (retry) => parsed.retries.push(retry),
    onError: (error) => parsed.errors.push(error),
  });
  parser.feed(text);
  return parsed;
}

function typeErrorOf(fn: () => unknown): TypeError {
  try {
    fn();
  } catch (error) {
    if (error instanceof TypeError) return error;
    throw new Error(`expected a TypeError, got ${String(error)}`);
  }
  throw new Error('expected a TypeError, nothing was thrown');
}

const normalise = (text: string) => text.replace(/\r\n|\r/g, '\n');

describe('encodeEvent(event)', () => {
  describe('data line splitting', () => {
    it('should write a single line as one data line', () => {
      expect(encodeEvent({ data: 'hello' })).toBe('data: hello\n\n');
    });

    it.each([
      ['LF', 'a\nb', 'data: a\ndata: b\n\n'],
      ['CRLF', 'a\r\nb', 'data: a\ndata: b\n\n'],
      ['a lone CR', 'a\rb', 'data: a\ndata: b\n\n'],
      ['mixed endings', 'a\nb\r\nc\rd', 'data: a\ndata: b\ndata: c\ndata: d\n\n'],
      ['consecutive CRs', 'a\r\rb', 'data: a\ndata: \ndata: b\n\n'],
      ['LF then CR (two breaks, not one)', 'a\n\rb', 'data: a\ndata: \ndata: b\n\n'],
      ['consecutive CRLFs', 'a\r\n\r\nb', 'data: a\ndata: \ndata: b\n\n'],
      ['a trailing LF', 'a\n', 'data: a\ndata: \n\n'],
      ['a trailing CR', 'a\r', 'data: a\ndata: \n\n'],
      ['a leading LF', '\na', 'data: \ndata: a\n\n'],
      ['only a CRLF', '\r\n', 'data: \ndata: \n\n'],
    ])('should split on %s', (_name, data, wire) => {
      expect(encodeEvent({ data })).toBe(wire);
      expect(encodeEvent(data)).toBe(wire);
    });

    it('should write an empty string as exactly one empty data line', () => {
      expect(encodeEvent({ data: '' })).toBe('data: \n\n');
      expect(encodeEvent('')).toBe('data: \n\n');
      expect(parse('data: \n\n').events).toEqual([{ data: '', event: undefined, id: undefined }]);
    });

    it('should keep leading spaces, NUL and non-SSE line separators in the data', () => {
      expect(encodeEvent(' a')).toBe('data:  a\n\n');
      expect(encodeEvent('a\u2028b\u0085c\0d')).toBe('data: a\u2028b\u0085c\0d\n\n');
      expect(parse(encodeEvent(' a\n b')).events[0]?.data).toBe(' a\n b');
    });
  });

  describe('named events', () => {
    it('should write the event line before the data', () => {
      expect(encodeEvent({ event: 'update', data: 'x' })).toBe('event: update\ndata: x\n\n');
    });

    it('should write an empty name, which clients read as "message"', () => {
      expect(encodeEvent({ event: '', data: 'x' })).toBe('event: \ndata: x\n\n');
    });

    it('should write no data line for an event without data, so nothing is dispatched', () => {
      const wire = encodeEvent({ event: 'done' });
      expect(wire).toBe('event: done\n\n');
      expect(parse(wire).events).toEqual([]);
    });

    it.each([['a\nb'], ['a\rb'], ['a\r\nb'], ['\n']])('should reject the name %j', (event) => {
      const error = typeErrorOf(() => encodeEvent({ event, data: 'x' }));
      expect(error.message).toBe(
        `encodeEvent: \`event\` must not contain CR or LF, got a string (${JSON.stringify(event)})`,
      );
    });

    it('should reject a name that is not a string', () => {
      const error = typeErrorOf(() => encodeEvent({ event: 42 as unknown as string, data: 'x' }));
      expect(error.message).toBe('encodeEvent: `event` must be a string, got number (42)');
    });
  });

  describe('ids', () => {
    it('should write a string id before the data', () => {
      expect(encodeEvent({ id: 'abc-1', data: 'x' })).toBe('id: abc-1\ndata: x\n\n');
    });

    it('should allow an empty id, which resets the last event id', () => {
      const wire = encodeEvent({ id: '', data: 'x' });
      expect(wire).toBe('id: \ndata: x\n\n');
      expect(parse(wire).events).toEqual([{ id: '', event: undefined, data: 'x' }]);
    });

    it.each([
      [42, 'id: 42\n'],
      [0, 'id: 0\n'],
      [-7, 'id: -7\n'],
      [Number.MAX_SAFE_INTEGER, `id: ${Number.MAX_SAFE_INTEGER}\n`],
    ])('should write the number id %p in decimal', (id, line) => {
      expect(encodeEvent({ id, data: 'x' })).toBe(`${line}data: x\n\n`);
    });

    it('should write an id-only event that updates the id without dispatching', () => {
      const wire = encodeEvent({ id: 5 });
      expect(wire).toBe('id: 5\n\n');
      expect(parse(wire).events).toEqual([]);
    });

    it.each([['a\0b'], ['\0']])('should reject NUL in %j', (id) => {
      const error = typeErrorOf(() => encodeEvent({ id, data: 'x' }));
      expect(error.message).toBe(
        `encodeEvent: \`id\` must not contain CR, LF or NUL, got a string (${JSON.stringify(id)})`,
      );
      expect(error.message).toContain('\\u0000');
    });

    it.each([['a\nb'], ['a\rb'], ['a\r\nb']])('should reject CR or LF in %j', (id) => {
      const error = typeErrorOf(() => encodeEvent({ id, data: 'x' }));
      expect(error.message).toBe(
        `encodeEvent: \`id\` must not contain CR, LF or NUL, got a string (${JSON.stringify(id)})`,
      );
    });

    it.each([
      [1.5, 'number (1.5)'],
      [Number.NaN, 'number (NaN)'],
      [Number.POSITIVE_INFINITY, 'number (Infinity)'],
      [null, 'null'],
      [true, 'boolean (true)'],
      [{ n: 1 }, 'an object ({"n":1})'],
    ])('should reject the id %p', (id, shown) => {
      const error = typeErrorOf(() => encodeEvent({ id: id as unknown as number, data: 'x' }));
      expect(error.message).toBe(`encodeEvent: \`id\` must be a string or an integer, got ${shown}`);
    });
  });

  describe('retry', () => {
    it('should write retry: 0', () => {
      expect(encodeEvent({ retry: 0 })).toBe('retry: 0\n\n');
    });

    it('should write retry before the data', () => {
      const wire = encodeEvent({ retry: 3000, data: 'x' });
      expect(wire).toBe('retry: 3000\ndata: x\n\n');
      expect(parse(wire).retries).toEqual([3000]);
    });

    it.each([
      [-1, 'number (-1)'],
      [1.5, 'number (1.5)'],
      [Number.NaN, 'number (NaN)'],
      [Number.POSITIVE_INFINITY, 'number (Infinity)'],
      [2 ** 53, 'number (9007199254740992)'],
      ['5', 'a string ("5")'],
      [null, 'null'],
    ])('should reject %p', (retry, shown) => {
      const error = typeErrorOf(() => encodeEvent({ retry: retry as number, data: 'x' }));
      expect(error.message).toBe(`encodeEvent: \`retry\` must be a non-negative safe integer, got ${shown}`);
    });
  });

  describe('comments', () => {
    it('should write a comment-only event that dispatches nothing', () => {
      const wire = encodeEvent({ comment: 'hi' });
      expect(wire).toBe(': hi\n\n');
      const parsed = parse(wire);
      expect(parsed.events).toEqual([]);
      expect(parsed.comments).toEqual(['hi']);
    });

    it('should split a comment on CRLF, LF and lone CR, with a bare colon for empty lines', () => {
      expect(encodeEvent({ comment: 'a\nb\r\nc\rd' })).toBe(': a\n: b\n: c\n: d\n\n');
      expect(encodeEvent({ comment: 'a\n\nb' })).toBe(': a\n:\n: b\n\n');
      expect(encodeEvent({ comment: '' })).toBe(':\n\n');
    });

    it('should write comments first, then the event', () => {
      const wire = encodeEvent({ data: 'x', comment: 'note\nmore' });
      expect(wire).toBe(': note\n: more\ndata: x\n\n');
      const parsed = parse(wire);
      expect(parsed.comments).toEqual(['note', 'more']);
      expect(parsed.events).toEqual([{ data: 'x', event: undefined, id: undefined }]);
    });
  });

  describe('field order', () => {
    it('should write comment, event, id, retry, data whatever the key order', () => {
      const wire = encodeEvent({ data: 'd', retry: 10, id: 1, event: 'e', comment: 'c' });
      expect(wire).toBe(': c\nevent: e\nid: 1\nretry: 10\ndata: d\n\n');
    });
  });

  describe('what counts as an event object', () => {
    // Its only own key is `data`, yet it is a class instance, not a plain object.
    class Reply {
      constructor(readonly data: unknown) {}
    }

    it.each<[string, unknown, string]>([
      ['an object with other keys', { id: 42, name: 'Ada' }, 'data: {"id":42,"name":"Ada"}\n\n'],
      ['a string', 'hello', 'data: hello\n\n'],
      ['a number', 42, 'data: 42\n\n'],
      ['a boolean', false, 'data: false\n\n'],
      ['null', null, 'data: null\n\n'],
      ['an array', [{ data: 1 }], 'data: [{"data":1}]\n\n'],
      ['an empty object', {}, 'data: {}\n\n'],
      ['a Date', new Date(0), 'data: "1970-01-01T00:00:00.000Z"\n\n'],
      ['a class instance', new Reply('x'), 'data: {"data":"x"}\n\n'],
    ])('should send %s as data', (_name, input, wire) => {
      expect(encodeEvent(input)).toBe(wire);
    });

    it('should accept an event object with a null prototype', () => {
      const event: SseEvent = Object.assign(Object.create(null) as object, { event: 'e', data: 'x' });
      expect(encodeEvent(event)).toBe('event: e\ndata: x\n\n');
    });

    it('should treat fields set to undefined as absent', () => {
      expect(encodeEvent({ data: 'x', id: undefined, event: undefined, comment: undefined })).toBe(
        'data: x\n\n',
      );
      expect(encodeEvent({ id: 1, data: undefined })).toBe('id: 1\n\n');
    });

    it('should reject an event object whose fields are all undefined', () => {
      const error = typeErrorOf(() => encodeEvent({ data: undefined }));
      expect(error.message).toMatch(/^encodeEvent: an event object must set at least one of `event`, `data`/);
    });

    describe('isSseEvent(value)', () => {
      it.each<[string, unknown]>([
        ['{ data }', { data: 1 }],
        ['{ event, id, retry, comment }', { event: 'e', id: 1, retry: 1, comment: 'c' }],
        ['{ data: undefined }', { data: undefined }],
        ['a null-prototype object', Object.assign(Object.create(null) as object, { id: 'x' })],
      ])('should be true for %s', (_name, value) => {
        expect(isSseEvent(value)).toBe(true);
      });

      it.each<[string, unknown]>([
        ['{}', {}],
        ['an extra key', { data: 1, name: 'Ada' }],
        ['a symbol key', { data: 1, [Symbol('s')]: 1 }],
        ['an array', ['data']],
        ['a Date', new Date(0)],
        ['a class instance', new Reply('x')],
        ['a Map', new Map([['data', 1]])],
        ['a string', 'data'],
        ['null', null],
        ['undefined', undefined],
      ])('should be false for %s', (_name, value) => {
        expect(isSseEvent(value)).toBe(false);
      });
    });
  });

  describe('serialize option', () => {
    const upper = (data: unknown) => JSON.stringify(data).toUpperCase();

    it('should serialize non-string data, bare or in an event', () => {
      expect(encodeEvent({ a: 'b' }, upper)).toBe('data: {"A":"B"}\n\n');
      expect(encodeEvent({ event: 'e', data: [1, 'x'] }, upper)).toBe('event: e\ndata: [1,"X"]\n\n');
    });

    it('should not be called for string data', () => {
      const serialize = jest.fn(() => 'serialized');
      expect(encodeEvent('raw', serialize)).toBe('data: raw\n\n');
      expect(encodeEvent({ data: 'raw' }, serialize)).toBe('data: raw\n\n');
      expect(serialize).not.toHaveBeenCalled();
    });

    it('should split what it returns into data lines', () => {
      const pretty = (data: unknown) => JSON.stringify(data, null, 1);
      expect(encodeEvent({ a: 1 }, pretty)).toBe('data: {\ndata:  "a": 1\ndata: }\n\n');
      expect(parse(encodeEvent({ a: 1 }, pretty)).events[0]?.data).toBe('{\n "a": 1\n}');
    });

    it('should reject a result that is not a string', () => {
      const error = typeErrorOf(() => encodeEvent({ a: 1 }, () => 42 as unknown as string));
      expect(error.message).toBe('encodeEvent: `serialize` must return a string, got number (42)');
    });

    it('should let errors from the serializer through unchanged', () => {
      const failure = new RangeError('nope');
      expect(() =>
        encodeEvent({ a: 1 }, () => {
          throw failure;
        }),
      ).toThrow(failure);
    });
  });

  describe('bad input', () => {
    it.each<[string, () => unknown, string]>([
      ['a multi-line event name', () => encodeEvent({ event: 'a\nb', data: 1 }), 'event'],
      ['a non-string event name', () => encodeEvent({ event: [] as unknown as string }), 'event'],
      ['an id with NUL', () => encodeEvent({ id: '\0', data: 1 }), 'id'],
      ['a fractional id', () => encodeEvent({ id: 0.5, data: 1 }), 'id'],
      ['a negative retry', () => encodeEvent({ retry: -1 }), 'retry'],
      ['a non-string comment', () => encodeEvent({ comment: 1 as unknown as string }), 'comment'],
      ['undefined data', () => encodeEvent(undefined), 'data'],
      ['function data', () => encodeEvent({ data: () => 1 }), 'data'],
      ['symbol data', () => encodeEvent(Symbol('s')), 'data'],
      ['BigInt data', () => encodeEvent({ data: 10n }), 'data'],
      ['a serializer that is not a function', () => encodeEvent({ a: 1 }, null as never), 'serialize'],
    ])('should throw a TypeError naming the field for %s', (_name, fn, field) => {
      const error = typeErrorOf(fn);
      expect(error.message).toContain(`\`${field}\``);
      expect(error.message).toMatch(/ must .+, got /);
    });

    it('should show the bad value with its control characters visible', () => {
      expect(typeErrorOf(() => encodeEvent({ event: 'a\nb' })).message).toBe(
        'encodeEvent: `event` must not contain CR or LF, got a string ("a\\nb")',
      );
    });

    it('should clip a long bad value in the message', () => {
      const message = typeErrorOf(() => encodeEvent({ id: `${'x'.repeat(1000)}\n` })).message;
      expect(message.length).toBeLessThan(200);
      expect(message).toMatch(/…\)$/);
    });
  });
});

describe('encodeComment(text)', () => {
  it('should make the minimal heartbeat from an empty string', () => {
    expect(encodeComment('')).toBe(':\n\n');
  });

  it('should write one comment line per line, then a blank line', () => {
    expect(encodeComment('ping')).toBe(': ping\n\n');
    expect(encodeComment('a\rb\r\n\nc')).toBe(': a\n: b\n:\n: c\n\n');
  });

  it('should never dispatch an event', () => {
    const parsed = parse(encodeComment('data: x\n\nevent: y'));
    expect(parsed.events).toEqual([]);
    expect(parsed.comments).toEqual(['data: x', '', 'event: y']);
  });

  it('should reject a non-string', () => {
    expect(typeErrorOf(() => encodeComment(42 as unknown as string)).message).toBe(
      'encodeComment: `text` must be a string, got number (42)',
    );
  });
});

describe('encodeRetry(ms)', () => {
  it('should write a retry field and a blank line', () => {
    expect(encodeRetry(3000)).toBe('retry: 3000\n\n');
    expect(encodeRetry(0)).toBe('retry: 0\n\n');
    expect(parse(encodeRetry(2500)).retries).toEqual([2500]);
  });

  it.each([[-1], [1.5], [Number.NaN], ['5']])('should reject %p', (ms) => {
    expect(typeErrorOf(() => encodeRetry(ms as number)).message).toMatch(
      /^encodeRetry: `ms` must be a non-negative safe integer, got /,
    );
  });
});

describe('defaultSerialize(data)', () => {
  it('should pass strings through and JSON-encode everything else', () => {
    expect(defaultSerialize('a"b')).toBe('a"b');
    expect(defaultSerialize(1)).toBe('1');
    expect(defaultSerialize(null)).toBe('null');
    expect(defaultSerialize({ a: [1, 'x'] })).toBe('{"a":[1,"x"]}');
  });

  it.each<[string, unknown, string]>([
    ['undefined', undefined, 'undefined'],
    ['a function', function named() {}, 'a function (named)'],
    ['a symbol', Symbol('s'), 'a symbol (Symbol(s))'],
  ])('should reject %s, which has no JSON form', (_name, data, shown) => {
    expect(typeErrorOf(() => defaultSerialize(data)).message).toBe(
      `defaultSerialize: \`data\` must be JSON-serializable, got ${shown}`,
    );
  });

  it('should reject circular data, keeping the cause', () => {
    const circular: { self?: unknown } = {};
    circular.self = circular;
    const error = typeErrorOf(() => defaultSerialize(circular));
    expect(error.message).toMatch(/^defaultSerialize: `data` must be JSON-serializable, got an object \(/);
    expect(error.cause).toBeInstanceOf(TypeError);
  });
});

describe('encodeEvent against a spec parser (properties)', () => {
  const anyChar = fc.string({ unit: 'binary', minLength: 1, maxLength: 1 });
  const awkward = fc.constantFrom('\0', ' ', ':', '\u2028', '\u0085', '\uFEFF', 'data: x', 'id:', 'event:');
  const lineBreak = fc.constantFrom('\r', '\n', '\r\n');
  const text = fc.string({
    unit: fc.oneof(
      { arbitrary: anyChar, weight: 4 },
      { arbitrary: awkward, weight: 1 },
      { arbitrary: lineBreak, weight: 2 },
    ),
    maxLength: 30,
  });
  const lineChar = fc.oneof(anyChar, awkward).filter((c) => c.indexOf('\r') === -1 && c.indexOf('\n') === -1);
  const eventName = fc.string({ unit: lineChar, maxLength: 12 });
  const idText = fc.string({ unit: lineChar.filter((c) => c.indexOf('\0') === -1), maxLength: 12 });
  const event = fc.record(
    {
      data: text,
      event: eventName,
      id: fc.oneof(idText, fc.integer(), fc.maxSafeInteger()),
      retry: fc.oneof(fc.nat(), fc.maxSafeNat()),
      comment: text,
    },
    { requiredKeys: ['data'] },
  );
  const withBreak = (inner: fc.Arbitrary<string>, breaks: string[]) =>
    fc.tuple(inner, fc.constantFrom(...breaks), inner).map(([a, b, c]) => a + b + c);

  it('should dispatch exactly one event that round-trips every field', () => {
    fc.assert(
      fc.property(event, (input) => {
        const wire = encodeEvent(input);
        // One comparison per run keeps 10,000 runs fast; a failure still shows the whole difference.
        expect({ cr: wire.indexOf('\r'), ...parse(wire) }).toEqual({
          cr: -1,
          errors: [],
          events: [
            {
              data: normalise(input.data),
              event: input.event === '' ? undefined : input.event,
              id: input.id === undefined ? undefined : String(input.id),
            },
          ],
          retries: input.retry === undefined ? [] : [input.retry],
          comments: input.comment === undefined ? [] : normalise(input.comment).split('\n'),
        });
      }),
      { numRuns: 10000 },
    );
  });

  it('should round-trip JSON data (strings as they are)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const parsed = parse(encodeEvent({ data: value }));
        const expected = typeof value === 'string' ? normalise(value) : JSON.stringify(value);
        expect(parsed.events.map((e) => e.data)).toEqual([expected]);
      }),
      { numRuns: 1000 },
    );
  });

  it('should end every data event with exactly one blank line', () => {
    fc.assert(
      fc.property(text, fc.boolean(), (data, bare) => {
        const wire = encodeEvent(bare ? data : { data });
        expect(wire.endsWith('\n\n')).toBe(true);
        expect(wire.indexOf('\n\n')).toBe(wire.length - 2);
        expect(wire.indexOf('\r')).toBe(-1);
        expect(parse(wire).events.map((e) => e.data)).toEqual([normalise(data)]);
      }),
      { numRuns: 2000 },
    );
  });

  it('should refuse CR or LF in an event name', () => {
    fc.assert(
      fc.property(withBreak(text, ['\r', '\n', '\r\n']), text, (name, data) => {
        expect(typeErrorOf(() => encodeEvent({ event: name, data })).message).toContain('`event`');
      }),
      { numRuns: 2000 },
    );
  });

  it('should refuse CR, LF or NUL in an id', () => {
    fc.assert(
      fc.property(withBreak(text, ['\r', '\n', '\r\n', '\0']), text, (id, data) => {
        expect(typeErrorOf(() => encodeEvent({ id, data })).message).toContain('`id`');
      }),
      { numRuns: 2000 },
    );
  });

  it('should either throw a TypeError or write at most one event, whatever the input', () => {
    const field = fc.oneof(fc.anything(), text);
    const anyInput = fc.oneof(
      fc.anything(),
      fc.record({ data: field, event: field, id: field, retry: field, comment: field }, { requiredKeys: [] }),
    );
    fc.assert(
      fc.property(anyInput, (input) => {
        let wire: string;
        try {
          wire = encodeEvent(input);
        } catch (error) {
          expect(error).toBeInstanceOf(TypeError);
          return;
        }
        expect(wire.indexOf('\n\n')).toBe(wire.length - 2);
        expect(wire.indexOf('\r')).toBe(-1);
        const parsed = parse(wire);
        expect(parsed.errors).toEqual([]);
        expect(parsed.events.length).toBeLessThanOrEqual(1);
      }),
      { numRuns: 2000 },
    );
  });
});
