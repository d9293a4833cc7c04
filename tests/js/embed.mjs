// embed.mjs DIR < texts.txt > embeddings.jsonl
// A model as a transformers.js user deploys it: DIR is a model directory with onnx/model.onnx (st-export's file).
// transformers.js tokenizes each line (its own tokenizer, from DIR's tokenizer.json; padded batches of 4) and
// runs the graph in ONNX Runtime; the graph's "sentence_embedding" is written as {"embedding": [...]} per line.
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { AutoModel, AutoTokenizer, env } from '@huggingface/transformers';

const dir = path.resolve(process.argv[2]);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useBrowserCache = false;
env.useFSCache = false;
env.localModelPath = path.dirname(dir) + '/';
const name = path.basename(dir);
const tokenizer = await AutoTokenizer.from_pretrained(name, { local_files_only: true });
const model = await AutoModel.from_pretrained(name, { local_files_only: true, dtype: 'fp32' });
const texts = readFileSync(0, 'utf8').split('\n').filter((l) => l.length);
const out = [];
for (let i = 0; i < texts.length; i += 4) {
	const inputs = tokenizer(texts.slice(i, i + 4), { padding: true, truncation: true });
	const { sentence_embedding: e } = await model(inputs);
	const dim = e.dims[1];
	for (let b = 0; b < e.dims[0]; b++)
		out.push(JSON.stringify({ embedding: Array.from(e.data.subarray(b * dim, (b + 1) * dim)) }));
}
process.stdout.write(out.map((l) => l + '\n').join(''));
