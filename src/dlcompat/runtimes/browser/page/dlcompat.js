// The page side of dlcompat's browser runtimes: load a model with ONNX Runtime Web or TensorFlow.js on the
// backend asked for, read test inputs as raw float32 from the server, infer, and time calls with
// performance.now(). Driven from Python (dlcompat.runtimes.browser.runner) through page.evaluate.
//
// Every runtime file comes from this page's own server: /ort/ (onnxruntime-web/dist), /tfjs/
// (@tensorflow/tfjs/dist), /tfjs-wasm/ (@tensorflow/tfjs-backend-wasm/dist); the model from /model/,
// inputs from /data/. A backend the browser cannot offer comes back as {unavailable: reason}, with
// scope: "browser" where the reason is the browser's (no WebGPU adapter, no WebGL), not the model's.

const state = { runtime: null, backend: null, session: null, model: null, inputs: new Map() };

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const tag = document.createElement("script");
    tag.src = src;
    tag.onload = resolve;
    tag.onerror = () => reject(new Error(`could not load ${src} from the page's server`));
    document.head.appendChild(tag);
  });
}

function webglRenderer() {
  const canvas = document.createElement("canvas");
  const gl = canvas.getContext("webgl2") || canvas.getContext("webgl");
  if (!gl) return null;
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
}

async function webgpuAdapter() {
  if (!("gpu" in navigator)) return { reason: "navigator.gpu is absent: this browser build offers no WebGPU here" };
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) return { reason: "navigator.gpu.requestAdapter() returned null: no WebGPU adapter on this machine" };
  const info = adapter.info || {};
  return { adapter: [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" ") || "yes" };
}

function environment() {
  return {
    user_agent: navigator.userAgent,
    cross_origin_isolated: self.crossOriginIsolated === true,
    hardware_concurrency: navigator.hardwareConcurrency,
    timer: "performance.now()",
  };
}

// ---------------------------------------------------------------- loading

// one ONNX Runtime Web build per backend, as a site deploying it would pick (the wasm one is the smallest)
const ORT_BUNDLES = { wasm: "ort.wasm.min.mjs", webgpu: "ort.webgpu.min.mjs", webgl: "ort.webgl.min.mjs" };

async function loadOrt(spec) {
  const bundle = ORT_BUNDLES[spec.backend];
  if (!bundle) return { unavailable: `onnxruntime-web has no backend ${spec.backend} here`, scope: "browser" };
  const ort = await import(`/ort/${bundle}`);
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.proxy = false;
  ort.env.wasm.numThreads = spec.threads;
  ort.env.logLevel = "error";
  const facts = { runtime_version: ort.env.versions ? ort.env.versions.web || ort.env.versions.common : "",
                  bundle };
  let providers;
  if (spec.backend === "wasm") providers = ["wasm"];
  else if (spec.backend === "webgpu") {
    const gpu = await webgpuAdapter();
    if (gpu.reason) return { unavailable: gpu.reason, scope: "browser" };
    facts.gpu = gpu.adapter;
    providers = ["webgpu"];
  } else if (spec.backend === "webgl") {
    const renderer = webglRenderer();
    if (!renderer) return { unavailable: "no WebGL context could be created in this browser", scope: "browser" };
    facts.gpu = renderer;
    providers = ["webgl"];
  }

  const t0 = performance.now();
  const response = await fetch(spec.model);
  if (!response.ok) throw new Error(`model download failed: HTTP ${response.status} for ${spec.model}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const t1 = performance.now();
  const options = {
    executionProviders: providers, graphOptimizationLevel: "all", intraOpNumThreads: spec.threads,
    interOpNumThreads: 1, executionMode: "sequential",
  };
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, options);
  } catch (err) {
    if (spec.backend !== "wasm") return { unavailable: `onnxruntime-web ${spec.backend} backend failed to start: ${err.message || err}` };
    throw err;
  }
  const t2 = performance.now();
  state.ort = ort;
  state.session = session;
  state.options = options;
  // prepare the input once (before any clock), then each call is session.run on it
  state.prepare = (input, shape) => {
    const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", input, shape) };
    const output = session.outputNames[0];
    return async () => {
      const out = await session.run(feeds);
      const tensor = out[output];
      return { data: tensor.data, dims: tensor.dims, dispose: () => tensor.dispose && tensor.dispose() };
    };
  };
  return {
    ...facts,
    backend: spec.backend,
    execution_providers: providers,
    // numThreads after the first session: ONNX Runtime Web drops to 1 where threads are not possible
    threads: spec.backend === "wasm" ? ort.env.wasm.numThreads : null,
    model_download_ms: t1 - t0,
    model_init_ms: t2 - t1,
    model_bytes: bytes.byteLength,
  };
}

async function loadTfjs(spec) {
  if (!window.tf) await loadScript("/tfjs/tf.min.js");
  const tf = window.tf;
  const facts = { runtime_version: tf.version.tfjs };
  const r0 = performance.now();
  if (spec.backend === "wasm") {
    if (!tf.wasm) await loadScript("/tfjs-wasm/tf-backend-wasm.min.js");
    tf.wasm.setWasmPaths("/tfjs-wasm/");
    tf.wasm.setThreadsCount(spec.threads);
  } else if (spec.backend === "webgl") {
    const renderer = webglRenderer();
    if (!renderer) return { unavailable: "no WebGL context could be created in this browser", scope: "browser" };
    facts.gpu = renderer;
  } else if (spec.backend !== "cpu") return { unavailable: `TensorFlow.js has no backend ${spec.backend} here`, scope: "browser" };
  let ok = false;
  try {
    ok = await tf.setBackend(spec.backend);
    await tf.ready();
  } catch (err) {
    return { unavailable: `TensorFlow.js ${spec.backend} backend failed to start: ${err.message || err}` };
  }
  if (!ok || tf.getBackend() !== spec.backend) {
    return { unavailable: `TensorFlow.js could not start its ${spec.backend} backend (it runs ${tf.getBackend()})` };
  }
  const r1 = performance.now();
  // download (model.json and its weight shards) apart from building the model from them
  const artifacts = await tf.io.http(spec.model).load();
  const t1 = performance.now();
  const model = spec.model_kind === "graph"
    ? await tf.loadGraphModel(tf.io.fromMemory(artifacts))
    : await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const t2 = performance.now();
  state.tf = tf;
  state.model = model;
  // prepare the input tensor once (before any clock), then each call is predict and the read of its output
  state.prepare = (input, shape) => {
    const x = tf.tensor(input, shape, "float32");
    const call = async () => {
      const y = model.predict(x);
      const data = await y.data();
      const dims = y.shape;
      y.dispose();
      return { data, dims, dispose: () => {} };
    };
    call.release = () => x.dispose();
    return call;
  };
  let threads = 1;  // the cpu and webgl backends drive from the page's one JavaScript thread
  if (spec.backend === "wasm") threads = tf.wasm.getThreadsCount();
  if (spec.backend === "webgl") threads = null;
  const weightBytes = artifacts.weightData ? (artifacts.weightData.byteLength
    ?? artifacts.weightData.reduce((s, b) => s + b.byteLength, 0)) : 0;
  return {
    ...facts,
    backend: tf.getBackend(),
    threads,
    webgl_version: spec.backend === "webgl" ? tf.env().getNumber("WEBGL_VERSION") : null,
    runtime_init_ms: r1 - r0,
    model_download_ms: t1 - r1,
    model_init_ms: t2 - t1,
    model_bytes: weightBytes,
  };
}

export async function load(spec) {
  const loaders = { ortweb: loadOrt, tfjs: loadTfjs };
  if (!loaders[spec.runtime]) throw new Error(`unknown browser runtime ${spec.runtime}`);
  const facts = await loaders[spec.runtime](spec);
  state.runtime = spec.runtime;
  state.backend = spec.backend;
  return { ...environment(), ...facts };
}

// ---------------------------------------------------------------- inputs and inference

// test inputs arrive as raw little-endian float32 (an .bin file from the server), never as JSON numbers
export async function setInput(name, url, shape) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`input download failed: HTTP ${response.status} for ${url}`);
  const data = new Float32Array(await response.arrayBuffer());
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`input ${url} holds ${data.length} floats, its shape needs ${count}`);
  state.inputs.set(name, { data, shape });
  return data.length;
}

function toBase64(floats) {
  const bytes = new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

// logits of input `name`, in chunks of `chunk` images, returned as base64 of float32 bytes
export async function infer(name, chunk) {
  const { data, shape } = state.inputs.get(name);
  const n = shape[0];
  const per = data.length / n;
  let out = null;
  let classes = 0;
  for (let start = 0; start < n; start += chunk) {
    const stop = Math.min(n, start + chunk);
    const call = state.prepare(data.subarray(start * per, stop * per), [stop - start, ...shape.slice(1)]);
    const part = await call();
    classes = part.data.length / (stop - start);
    if (out === null) out = new Float32Array(n * classes);
    out.set(part.data, start * classes);
    part.dispose();
    if (call.release) call.release();
  }
  return { logits: toBase64(out), shape: [n, classes] };
}

// ---------------------------------------------------------------- intermediate tensors

// a second session, `id`, of a copy of the model at `url` whose graph outputs include intermediate values, with the
// options of the deployed model's session (which infer and time keep using)
export async function loadExtra(id, url) {
  if (state.runtime !== "ortweb") throw new Error(`${state.runtime} has no model copies with extra outputs`);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`model copy download failed: HTTP ${response.status} for ${url}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!state.extra) state.extra = new Map();
  state.extra.set(id, await state.ort.InferenceSession.create(bytes, state.options));
  return state.extra.get(id).outputNames;
}

// the outputs `names` of session `id` on input `name`, in chunks of `chunk` images: {name: {data, dims}}, data the
// base64 of float32 bytes (other element types converted), dims with the whole batch first
export async function inferAll(id, name, names, chunk) {
  const session = state.extra.get(id);
  return gather(name, names, chunk, async (input, dims) => {
    const out = await session.run({ [session.inputNames[0]]: new state.ort.Tensor("float32", input, dims) }, names);
    const result = {};
    for (const k of names) {
      result[k] = { values: floats(out[k].data), dims: out[k].dims };
      if (out[k].dispose) out[k].dispose();
    }
    return result;
  });
}

// TF.js: the nodes `names` of the deployed graph model on input `name` (GraphModel.execute with those nodes as its
// outputs: the same model and kernels, which keep those tensors), in chunks, as inferAll returns them
export async function inferNodes(name, names, chunk) {
  if (state.runtime !== "tfjs" || typeof state.model.execute !== "function" || state.model.layers) {
    throw new Error(`${state.runtime}: only a TF.js graph model executes up to named nodes`);
  }
  const tf = state.tf;
  return gather(name, names, chunk, async (input, dims) => {
    const x = tf.tensor(input, dims, "float32");
    const out = [].concat(state.model.execute(x, names));
    x.dispose();
    const result = {};
    for (let i = 0; i < names.length; i++) {
      result[names[i]] = { values: floats(await out[i].data()), dims: out[i].shape };
      out[i].dispose();
    }
    return result;
  });
}

function floats(data) {
  return (data instanceof Float32Array ? data : Float32Array.from(data, Number)).slice();
}

// `run(input, dims)` on input `name` in chunks of `chunk` images, each chunk's {name: {values, dims}} joined along
// the batch: {name: {data: base64 of float32 bytes, dims}}
async function gather(name, names, chunk, run) {
  const { data, shape } = state.inputs.get(name);
  const n = shape[0];
  const per = data.length / n;
  const parts = Object.fromEntries(names.map((k) => [k, []]));
  for (let start = 0; start < n; start += chunk) {
    const stop = Math.min(n, start + chunk);
    const out = await run(data.subarray(start * per, stop * per), [stop - start, ...shape.slice(1)]);
    for (const k of names) parts[k].push(out[k]);
  }
  const result = {};
  for (const k of names) {
    const all = new Float32Array(parts[k].reduce((s, p) => s + p.values.length, 0));
    let offset = 0;
    for (const p of parts[k]) { all.set(p.values, offset); offset += p.values.length; }
    const dims = [...parts[k][0].dims];
    if (parts[k].length > 1) dims[0] = parts[k].reduce((s, p) => s + p.dims[0], 0);
    result[k] = { data: toBase64(all), dims };
  }
  return result;
}

// ---------------------------------------------------------------- timing (the rules of metrics.latency)

// log of the Binomial(n, 1/2) pmf at i
function logPmf(n, i) {
  let s = -n * Math.LN2;
  for (let k = 1; k <= i; k++) s += Math.log(n - i + k) - Math.log(k);
  return s;
}

// the order-statistic CI of the median, as metrics.latency.median_ci_ranks computes it: ranks (1-based) or null
function medianCiRanks(n, level) {
  const tail = (1 - level) / 2;
  let i = Math.max(0, Math.floor(n / 2 - 6 * Math.sqrt(n)));
  let pmf = Math.exp(logPmf(n, i));
  let cdf = 0, rank = 0;
  while (i <= Math.floor(n / 2)) {
    cdf += pmf;
    if (cdf > tail) break;
    rank = i + 1;
    pmf *= (n - i) / (i + 1);
    i += 1;
  }
  return rank === 0 ? null : [rank, n - rank + 1];
}

// the median of a sorted typed array, as numpy.median: the mean of the two middle values of an even count
function sortedMedian(sorted) {
  const n = sorted.length;
  return (sorted[Math.floor((n - 1) / 2)] + sorted[Math.floor(n / 2)]) / 2;
}

// the CI of the median of `samples` (in call order) from block medians, as metrics.latency.median_ci computes it:
// k = min(30, isqrt(n)) contiguous blocks (numpy.array_split: the first n % k blocks hold one sample more), the
// order-statistic CI over the k block medians, stretched to hold the overall median and widened by `tick` on each
// side. {low, high, median, blocks} or null where k < 6 (or `level` needs more blocks).
export function medianCi(samples, level, tick) {
  const values = Float64Array.from(samples);
  const n = values.length;
  const k = Math.min(30, Math.floor(Math.sqrt(n)));
  const ranks = k >= 6 ? medianCiRanks(k, level) : null;
  if (!ranks) return null;
  const median = sortedMedian(values.slice().sort());
  const base = Math.floor(n / k), extra = n % k;
  const blockMedians = new Float64Array(k);
  for (let b = 0, start = 0; b < k; b++) {
    const size = base + (b < extra ? 1 : 0);
    blockMedians[b] = sortedMedian(values.slice(start, start + size).sort());
    start += size;
  }
  blockMedians.sort();
  const low = Math.min(blockMedians[ranks[0] - 1], median) - tick;
  const high = Math.max(blockMedians[ranks[1] - 1], median) + tick;
  return { low, high, median, blocks: k };
}

function ciRelWidth(samples, level, tick) {
  const ci = medianCi(samples, level, tick);
  return ci && ci.median > 0 ? (ci.high - ci.low) / ci.median : Infinity;
}

// the tick of performance.now() in ms: the smallest positive step between two readings, over `reads` spins
// (Chromium coarsens the clock to 5 µs in a cross-origin isolated page, 100 µs otherwise)
function clockTick(reads = 20) {
  let tick = Infinity;
  for (let r = 0; r < reads; r++) {
    const a = performance.now();
    let b = performance.now();
    while (b === a) b = performance.now();
    if (b - a > 0 && b - a < tick) tick = b - a;
  }
  return tick;
}

// Time inference on input `name` by the rules of metrics.latency.measure_latency: a first call apart; a warm-up
// of at least `warmup` calls and `warmup_time_s`; a steady state until `min_repeats` samples and `min_time_s` and a
// median CI narrower than `max_ci_rel_width`, or `max_time_s` in all. The rules are checked between batches of
// samples, never inside one. Only the calls (and reading their output back) lie between two clock readings.
export async function time(name, rules) {
  const { data, shape } = state.inputs.get(name);
  const prepared = state.prepare(data, shape);
  const call = async () => { const r = await prepared(); r.dispose(); };
  try {
    return await timeCalls(call, rules);
  } finally {
    if (prepared.release) prepared.release();
  }
}

// The page's clock ticks in microseconds, where one call may take tens of them: a sample times `calls_per_sample`
// calls in a row (each sample is their time / that count), so that the CI's tick floor, one tick per sample on each
// side, costs at most half of `max_ci_rel_width`: calls_per_sample = max(1, ceil(4 * tick / (max_ci_rel_width * e)))
// for calls of e ms, e first from the warm-up (its time / its calls). A fresh page's calls can run several times
// slower in its first tenth of a second than after it, so once the steady state has `min_repeats` samples their
// median is checked too: where it needs more calls per sample, those samples were warm-up after all, and the steady
// state starts again with the larger count (it only grows, so this ends).
async function timeCalls(call, rules) {
  const now = () => performance.now();
  const tick = clockTick();
  // a call too short to move the clock at all lasts at most a tick
  const groupFor = (perCall) => Math.max(1, Math.ceil(4 * tick / (rules.max_ci_rel_width * (perCall || tick))));
  const t0 = now();
  await call();
  const t1 = now();
  const first = t1 - t0;
  const deadline = t1 + rules.max_time_s * 1000;
  const warmEnd = t1 + rules.warmup_time_s * 1000;
  let warmupCalls = 0, t = t1;
  while ((warmupCalls < rules.warmup || t < warmEnd) && t < deadline) {
    await call();
    warmupCalls += 1;
    t = now();
  }
  let warmupMs = t - t1;
  let group = groupFor(warmupCalls > 0 ? warmupMs / warmupCalls : first);
  let samples = [];
  let began = now();
  let minEnd = began + rules.min_time_s * 1000;
  let target = Math.max(rules.min_repeats, 1), until = deadline, last = began;
  for (;;) {
    while (samples.length < target) {
      const a = now();
      for (let i = 0; i < group; i++) await call();
      const b = now();
      samples.push((b - a) / group);
      last = b;
      if (b >= until) break;
    }
    if (last >= deadline) break;
    const n = samples.length;
    if (n < rules.min_repeats) { target = rules.min_repeats; continue; }
    const needed = groupFor(sortedMedian(Float64Array.from(samples).sort()));
    if (needed > group) {  // start the steady state again, the samples so far counted as warm-up
      warmupCalls += n * group;
      began = now();
      warmupMs = began - t1;
      minEnd = began + rules.min_time_s * 1000;
      group = needed;
      samples = [];
      target = Math.max(rules.min_repeats, 1);
      until = deadline;
      continue;
    }
    if (last < minEnd) { target = Math.max(2 * n, n + 64); until = Math.min(minEnd, deadline); continue; }
    if (ciRelWidth(samples, rules.ci_level, tick / group) <= rules.max_ci_rel_width) break;
    target = n + Math.max(Math.floor(n / 4), 16);
    until = deadline;
  }
  return { samples_ms: samples, first_call_ms: first, warmup_calls: warmupCalls, warmup_ms: warmupMs,
           elapsed_ms: last - began, calls_per_sample: group, clock_tick_ms: tick };
}

// ---------------------------------------------------------------- a bare loop (benchmarks/harness_overhead.py)

// `blocks` blocks of `calls` calls of the runtime's own API on input `name`, written out inline, the clock read
// around each block only: ms per call of each block. The baseline that `time` is compared against.
export async function bareBlocks(name, calls, blocks) {
  const { data, shape } = state.inputs.get(name);
  const perCall = [];
  if (state.runtime === "ortweb") {
    const session = state.session;
    const feeds = { [session.inputNames[0]]: new state.ort.Tensor("float32", data, shape) };
    for (let b = 0; b < blocks; b++) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) await session.run(feeds);
      perCall.push((performance.now() - t0) / calls);
    }
  } else {
    const tf = state.tf, model = state.model;
    const x = tf.tensor(data, shape, "float32");
    for (let b = 0; b < blocks; b++) {
      const t0 = performance.now();
      for (let i = 0; i < calls; i++) {
        const y = model.predict(x);
        await y.data();
        y.dispose();
      }
      perCall.push((performance.now() - t0) / calls);
    }
    x.dispose();
  }
  return perCall;
}
