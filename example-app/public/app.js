// The live demo's page script: plain browser JavaScript, no build step — an ES module, so that the chat
// card can import express-streaming/client as the package ships it. `window.demo` holds what each card
// saw, for the curious (and for the browser test).
import { openStream } from '/vendor/express-streaming/client.js';

const $ = (id) => document.getElementById(id);
const demo = {
  eventsPerSecond: [],
  ticks: { received: [], missed: [], gaps: 0, duplicates: 0, resets: [] },
  chat: [],
  rows: { reads: 0, count: 0 },
};
window.demo = demo;

/** Resolves when `source` first opens: the metrics card reads the server once the page's streams are up. */
const opened = (source) => new Promise((resolve) => source.addEventListener('open', resolve, { once: true }));
const streamsOpen = [];

/** The seq of a hub id `<epoch>-<seq>`: the hub numbers each topic's events 1, 2, 3, … */
const seqOf = (id) => Number(id.slice(id.lastIndexOf('-') + 1));

// --- Events per second: every SSE event is counted, the chart redrawn each second ---

let thisSecond = 0;
let total = 0;
function counted() {
  thisSecond++;
  total++;
}

const chart = $('chart');
function drawChart() {
  const history = demo.eventsPerSecond;
  history.push(thisSecond);
  if (history.length > 60) history.shift();
  $('eps').textContent = String(thisSecond);
  $('total-events').textContent = String(total);
  thisSecond = 0;

  const ratio = window.devicePixelRatio || 1;
  const width = chart.clientWidth;
  const height = chart.clientHeight;
  if (chart.width !== width * ratio) chart.width = width * ratio;
  if (chart.height !== height * ratio) chart.height = height * ratio;
  const g = chart.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const top = Math.max(5, ...history);
  const plot = { left: 28, bottom: height - 16, height: height - 26 };
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#5b6477';
  g.strokeStyle = '#d9dde6';
  for (const value of [0, top / 2, top]) {
    const y = plot.bottom - (value / top) * plot.height;
    g.beginPath();
    g.moveTo(plot.left, y);
    g.lineTo(width, y);
    g.stroke();
    g.fillText(String(Math.round(value)), 2, y + 4);
  }
  g.fillText('60 s ago', plot.left, height - 3);
  g.fillText('now', width - 22, height - 3);
  const bar = (width - plot.left) / 60;
  g.fillStyle = '#2f6fde';
  history.forEach((value, i) => {
    const h = (value / top) * plot.height;
    const x = plot.left + (60 - history.length + i) * bar;
    g.fillRect(x + 1, plot.bottom - h, Math.max(1, bar - 2), h);
  });
  chart.dataset.frames = String(Number(chart.dataset.frames) + 1);
}
setInterval(drawChart, 1000);
drawChart();

// --- Server-Sent Events: the counter (ten events, then the server ends the stream) ---

{
  const list = $('events');
  const status = $('status');
  const source = new EventSource('/counter');
  streamsOpen.push(opened(source));
  source.onopen = () => {
    status.textContent = 'open';
  };
  source.addEventListener('counter', (event) => {
    counted();
    const item = document.createElement('li');
    item.textContent = event.data;
    list.append(item);
    if (event.data === '9') {
      source.close(); // otherwise EventSource reconnects when the stream ends
      status.textContent = 'done';
    }
  });
}

/** Shows a stream's state: open, reconnecting (the browser retries by itself), closed. */
function watch(source, status) {
  source.onopen = () => {
    status.textContent = 'live';
    status.className = 'status ok';
  };
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) return;
    status.textContent = 'reconnecting… (the browser sends Last-Event-ID by itself)';
    status.className = 'status bad';
  };
}

// --- Hub: chat, through express-streaming/client. Published messages arrive in every open tab; the
// tab keeps its place in sessionStorage, so a reload shows what was sent while it reloaded ---

{
  const list = $('chat');
  const status = $('chat-status');
  const live = (text, ok) => {
    status.textContent = text;
    status.className = `status ${ok ? 'ok' : 'bad'}`;
  };
  let markOpen;
  streamsOpen.push(new Promise((resolve) => (markOpen = resolve)));
  const chat = openStream('/chat', {
    onOpen: () => {
      live('live', true);
      markOpen();
    },
    onError: () => live(chat.readyState === 2 ? 'closed' : 'reconnecting… (the client resumes by itself)'),
    // The hub could not give this tab what it missed (a server restart, say): it says so.
    onReset: (reason) => {
      live(`reset (${reason}): messages sent meanwhile are gone`, false);
      const item = document.createElement('li');
      item.className = 'reset';
      item.textContent = `— reset: ${reason} —`;
      list.append(item);
    },
  });
  chat.on('msg', ({ text }, event) => {
    counted();
    demo.chat.push(text);
    const item = document.createElement('li');
    item.textContent = text;
    const id = document.createElement('small');
    id.textContent = `#${seqOf(event.lastEventId)}`;
    item.append(id);
    list.append(item);
    list.scrollTop = list.scrollHeight;
  });

  $('chat-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const input = $('chat-text');
    const response = await fetch('/chat', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: input.value }),
    });
    if (response.ok) input.value = '';
    else status.textContent = `publish failed: ${response.status} ${(await response.json()).error}`;
  });
}

// --- Hub: drop and resume. The ticks published while away are replayed on reconnect ---

{
  const ticks = demo.ticks;
  const list = $('ticks');
  const status = $('ticks-status');
  const dropButton = $('drop');
  const notice = $('ticks-reset');
  const summary = $('resume-summary');
  let source;
  let lastEventId = '';
  let lastSeq;
  /** Server clock minus ours, from the last live tick: tells which ticks were published while away. */
  let offset = 0;
  /** When we reconnected (our clock), until the first live tick after it. */
  let reconnectedAt;
  let missedNow = [];

  const show = (text, className) => {
    const item = document.createElement('li');
    item.textContent = text;
    if (className) item.className = className;
    list.append(item);
    while (list.children.length > 40) list.firstChild.remove();
  };

  function connect(id) {
    // A fresh EventSource sends no Last-Event-ID header: the library reads ?lastEventId= instead.
    source = new EventSource(id ? `/ticks?lastEventId=${encodeURIComponent(id)}` : '/ticks');
    watch(source, status);
    source.addEventListener('tick', (event) => {
      counted();
      const seq = seqOf(event.lastEventId);
      const { at } = JSON.parse(event.data);
      if (lastSeq !== undefined && seq <= lastSeq) ticks.duplicates++;
      else if (lastSeq !== undefined && seq !== lastSeq + 1) ticks.gaps++;
      lastSeq = seq;
      lastEventId = event.lastEventId;
      ticks.received.push(seq);
      const missed = reconnectedAt !== undefined && at - offset < reconnectedAt;
      if (missed) {
        ticks.missed.push(seq);
        missedNow.push(seq);
      } else {
        offset = at - Date.now();
        if (reconnectedAt !== undefined) resumed();
      }
      show(`#${seq}`, missed ? 'missed' : '');
    });
    source.addEventListener('reset', (event) => {
      counted();
      const { reason } = JSON.parse(event.data);
      ticks.resets.push(reason);
      // The reset's id is where the stream goes on from: the next tick is the one after it.
      lastSeq = seqOf(event.lastEventId);
      lastEventId = event.lastEventId;
      reconnectedAt = undefined;
      missedNow = [];
      summary.textContent = '';
      delete summary.dataset.state;
      notice.hidden = false;
      notice.textContent = `reset: ${reason} — the ticks you missed are gone; going on from #${lastSeq}`;
      show(`reset: ${reason}`, 'reset');
    });
  }

  function resumed() {
    const n = missedNow.length;
    summary.dataset.state = 'resumed';
    summary.textContent =
      n === 0
        ? 'Reconnected: nothing was published while you were away.'
        : `Resumed: the ${n} tick${n === 1 ? '' : 's'} published while you were away ` +
          `(#${missedNow[0]}–#${missedNow[n - 1]}, highlighted) were replayed, then live again. ` +
          `Gaps: ${ticks.gaps}, duplicates: ${ticks.duplicates}.`;
    reconnectedAt = undefined;
    missedNow = [];
  }

  function drop() {
    source.close();
    status.textContent = `dropped after #${lastSeq ?? '–'}; ticks go on being published…`;
    status.className = 'status bad';
    summary.textContent = '';
    delete summary.dataset.state;
    dropButton.textContent = 'Reconnect';
  }

  function reconnect(id) {
    if (source.readyState !== EventSource.CLOSED) source.close();
    notice.hidden = true;
    reconnectedAt = Date.now();
    missedNow = [];
    dropButton.textContent = 'Drop connection';
    connect(id);
  }

  dropButton.addEventListener('click', () => {
    if (source.readyState === EventSource.CLOSED) reconnect(lastEventId);
    else drop();
  });
  // An id from another life of the log (as after a restart of a server with the memory store):
  // the hub cannot know what this client missed, and tells it to reset.
  $('forget').addEventListener('click', () => {
    drop();
    reconnect(`forgotten0-${lastSeq ?? 0}`);
  });
  connect('');
  streamsOpen.push(opened(source));
}

// --- Chunked transfer: a progress bar fed by res.chunk(), read with fetch as it arrives ---

/** Calls `onLine` with each complete line of a streamed response body, as it arrives. */
async function readLines(response, onLine, onRead) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onRead?.();
    buffered += value;
    const lines = buffered.split('\n');
    buffered = lines.pop();
    for (const line of lines) if (line !== '') onLine(line);
  }
  if (buffered !== '') onLine(buffered);
}

$('progress-start').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  const bar = $('progress');
  const label = $('progress-label');
  button.disabled = true;
  bar.value = 0;
  label.textContent = 'working…';
  try {
    const response = await fetch('/progress');
    await readLines(response, (line) => {
      bar.value = Number(line);
      label.textContent = `${line} %`;
    });
    label.textContent = bar.value === 100 ? '100 % — done' : `stopped at ${bar.value} %`;
  } catch (error) {
    label.textContent = `failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

// --- NDJSON: each row is rendered as soon as its line arrives ---

$('rows-start').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  const body = $('rows');
  const label = $('rows-label');
  const started = performance.now();
  button.disabled = true;
  body.textContent = '';
  demo.rows = { reads: 0, count: 0 };
  label.textContent = 'loading…';
  try {
    const response = await fetch('/rows');
    await readLines(
      response,
      (line) => {
        const row = JSON.parse(line);
        const tr = document.createElement('tr');
        tr.className = 'fresh';
        for (const value of [row.id, row.name, row.score, `${Math.round(performance.now() - started)} ms`]) {
          const td = document.createElement('td');
          td.textContent = String(value);
          tr.append(td);
        }
        body.append(tr);
        demo.rows.count++;
        label.textContent = `${demo.rows.count} rows`;
      },
      () => demo.rows.reads++,
    );
    label.textContent = `${demo.rows.count} rows — done`;
  } catch (error) {
    label.textContent = `failed: ${error.message}`;
  } finally {
    button.disabled = false;
  }
});

// --- A large file: its size from a HEAD request, and a Range request for its first line ---

fetch('/download', { method: 'HEAD' }).then((response) => {
  const bytes = Number(response.headers.get('content-length'));
  $('download-size').textContent = `(${(bytes / 1024 / 1024).toFixed(1)} MiB)`;
});
$('range').addEventListener('click', async () => {
  const response = await fetch('/download', { headers: { range: 'bytes=0-63' } });
  const out = $('range-result');
  out.hidden = false;
  out.textContent =
    `${response.status} ${response.statusText}\n` +
    `Content-Range: ${response.headers.get('content-range')}\n\n${await response.text()}`;
});

// --- Clean-up when the client leaves: the counter of the process that served the feed ---

/** The first `type` event of `source` whose data passes `matches`, parsed; undefined after `ms`. */
function nextEvent(source, type, matches, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    source.addEventListener(type, (event) => {
      const data = JSON.parse(event.data);
      if (!matches(data)) return;
      clearTimeout(timer);
      resolve(data);
    });
  });
}

$('disconnect-run').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  const result = $('disconnect-result');
  const table = $('disconnect-table');
  const show = (label, counts) => {
    const tr = document.createElement('tr');
    for (const value of [label, counts.pid, counts.liveProducers]) {
      const td = document.createElement('td');
      td.textContent = String(value);
      tr.append(td);
    }
    table.append(tr);
  };
  button.disabled = true;
  table.textContent = '';
  delete result.dataset.state;
  result.className = 'status';
  // Whichever process serves the feed publishes its `released` through the hub: listen first.
  const feedId = Math.random().toString(36).slice(2);
  const producers = new EventSource('/producers');
  try {
    const released = nextEvent(producers, 'released', (data) => data.feed === feedId, 10_000);
    await opened(producers);
    result.textContent = 'feed open…';
    const feed = new EventSource(`/slow-feed?id=${feedId}`);
    feed.addEventListener('feed', counted);
    const reading = await nextEvent(feed, 'feed', (data) => data.n === 3, 10_000);
    if (reading === undefined) throw new Error('the feed sent nothing');
    show('while reading', reading);
    feed.close(); // the client leaves
    result.textContent = 'left; waiting for the server to let go…';
    const after = await released;
    if (after) show('after leaving', after);
    const ok =
      after !== undefined && after.pid === reading.pid && after.liveProducers === reading.liveProducers - 1;
    result.dataset.state = ok ? 'released' : 'leaked';
    result.textContent = ok
      ? `released: the producer’s finally ran, in process ${after.pid}`
      : 'the producer is still running!';
    result.className = `status ${ok ? 'ok' : 'bad'}`;
  } catch (error) {
    result.textContent = `failed: ${error.message}`;
  } finally {
    producers.close();
    button.disabled = false;
  }
});

// --- Metrics: the express_streaming_* series of /metrics ---

async function refreshMetrics() {
  const text = await (await fetch('/metrics')).text();
  $('metrics').textContent = text
    .split('\n')
    .filter((line) => line.startsWith('express_streaming_'))
    .join('\n');
}
$('metrics-refresh').addEventListener('click', refreshMetrics);
// once the page's own streams are open, so that they are counted
Promise.all(streamsOpen).then(refreshMetrics);
