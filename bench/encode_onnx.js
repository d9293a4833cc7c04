// ONNX Runtime baseline for bench/encode.sh: runs MODEL.onnx (exported by encode_torch.py) on the batches that
// encode_bench --write saved, padded to each batch's longest row.
//
//     node encode_onnx.js DIR MODEL.onnx THREADS
//
// Prints key=value lines: sentences_per_s (best batch), max_abs_diff against the C output of batch 0.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function readInts(path) {
  const b = fs.readFileSync(path);
  return new Int32Array(b.buffer, b.byteOffset, b.length / 4);
}

function padded(ids, lengths, k, B, T) {
  let L = 0;
  for (let b = 0; b < B; b++) L = Math.max(L, lengths[k * B + b]);
  const x = new BigInt64Array(B * L), m = new BigInt64Array(B * L);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < lengths[k * B + b]; t++) {
      x[b * L + t] = BigInt(ids[(k * B + b) * T + t]);
      m[b * L + t] = 1n;
    }
  return { L, feeds: { input_ids: new ort.Tensor('int64', x, [B, L]), attention_mask: new ort.Tensor('int64', m, [B, L]) } };
}

async function main() {
  const [dir, model, threadsArg] = process.argv.slice(2);
  const threads = parseInt(threadsArg, 10);
  const [nb, B, T, H] = fs.readFileSync(`${dir}/shape.txt`, 'utf8').trim().split(/\s+/).map(Number);
  const ids = readInts(`${dir}/ids.i32`), lengths = readInts(`${dir}/lengths.i32`);
  const outBuf = fs.readFileSync(`${dir}/out.f32`);
  const outC = new Float32Array(outBuf.buffer, outBuf.byteOffset, outBuf.length / 4);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  let { L, feeds } = padded(ids, lengths, 0, B, T);
  const y = (await session.run(feeds)).last_hidden_state.data;
  let diff = 0;
  for (let b = 0; b < B; b++)
    for (let t = 0; t < lengths[b]; t++)
      for (let i = 0; i < H; i++)
        diff = Math.max(diff, Math.abs(y[(b * L + t) * H + i] - outC[(b * T + t) * H + i]));
  let best = 1e30;
  for (let k = 1; k < nb; k++) {
    ({ feeds } = padded(ids, lengths, k, B, T));
    const t0 = process.hrtime.bigint();
    await session.run(feeds);
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  console.log(`ort_version=${require('onnxruntime-node/package.json').version}`);
  console.log(`threads=${threads}\nbest_s=${best.toFixed(4)}\nsentences_per_s=${(B / best).toFixed(1)}`);
  console.log(`max_abs_diff=${diff.toExponential(2)}`);
}

main().catch((e) => { console.error(`encode_onnx.js: ${e.message}`); process.exit(1); });
