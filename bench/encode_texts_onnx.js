// ONNX Runtime anchor for the whole-process part of bench/encode.sh: session.run time of MODEL.onnx (written by
// st-export) on the texts of TEXTS, tokenised the way the bench's vocabulary makes trivial (word wN is id N,
// [CLS] 2, [SEP] 3), sorted by length and run BATCH at a time, as st-encode and sentence-transformers do.
//
//     node encode_texts_onnx.js MODEL.onnx TEXTS THREADS BATCH ROUNDS
//
// Prints key=value lines: sentences_per_s (all texts / the fastest round's summed session.run time) and
// sentences_per_cpu_s (the same with the process's CPU time, all threads, user + system, during session.run).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [model, textsFile, threadsArg, batchArg, roundsArg] = process.argv.slice(2);
  const threads = Number(threadsArg), batch = Number(batchArg), rounds = Number(roundsArg);
  const rows = fs.readFileSync(textsFile, 'utf8').split('\n').filter((l) => l.length)
    .map((l) => [2, ...l.split(' ').map((w) => Number(w.slice(1))), 3]);
  rows.sort((a, b) => a.length - b.length);
  const session = await ort.InferenceSession.create(model, {
    intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  const feedsList = [];
  for (let s = 0; s < rows.length; s += batch) {
    const part = rows.slice(s, s + batch), B = part.length, T = Math.max(...part.map((r) => r.length));
    const ids = new BigInt64Array(B * T), mask = new BigInt64Array(B * T);
    part.forEach((r, b) => r.forEach((id, t) => { ids[b * T + t] = BigInt(id); mask[b * T + t] = 1n; }));
    const feeds = { input_ids: new ort.Tensor('int64', ids, [B, T]), attention_mask: new ort.Tensor('int64', mask, [B, T]) };
    if (session.inputNames.includes('token_type_ids'))
      feeds.token_type_ids = new ort.Tensor('int64', new BigInt64Array(B * T), [B, T]);
    feedsList.push(feeds);
  }
  await session.run(feedsList[0]);   // warm-up
  let best = 1e30, bestCpu = 1e30;
  for (let r = 0; r < rounds; r++) {
    let total = 0, cpu = 0;
    for (const feeds of feedsList) {
      const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
      await session.run(feeds);
      const c = process.cpuUsage(c0);
      total += Number(process.hrtime.bigint() - t0) / 1e9;
      cpu += (c.user + c.system) / 1e6;
    }
    best = Math.min(best, total);
    bestCpu = Math.min(bestCpu, cpu);
  }
  const pkg = JSON.parse(fs.readFileSync(require.resolve('onnxruntime-node/package.json'), 'utf8'));
  console.log(`ort_version=${pkg.version}\nbest_s=${best.toFixed(4)}\nsentences_per_s=${(rows.length / best).toFixed(1)}\n` +
    `cpu_s=${bestCpu.toFixed(4)}\nsentences_per_cpu_s=${(rows.length / bestCpu).toFixed(1)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
