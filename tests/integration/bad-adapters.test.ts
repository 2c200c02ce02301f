import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { announce, describeFolder, putFiles } from '../../cli/upload';
import { finalizeUpload } from '../../lib/upload-protocol';
import { TINY_BASE_ID } from '../setup/env';
import { newUser, tinyManifest, writeAdapterFolder } from '../setup/helpers';

// The compatibility gate driven through the real publish path: upload, finalize, publish.
// Every rejected adapter is published as a new version of one adapter that already has
// version 1, so each case also shows that a failed check leaves the version list unchanged.
// The tests of this file run in order, which the last check of the table relies on.

type User = Awaited<ReturnType<typeof newUser>>;

async function publish(client: User['client'], dir: string, name: string) {
  const files = await describeFolder(dir);
  const begun = await client.adapters.beginUpload.mutate({ files: files.map(announce) });
  await putFiles(files, begun.files);
  return finalizeUpload(() => client.adapters.publish.mutate({ uploadId: begun.uploadId, name, baseModelId: TINY_BASE_ID }));
}

const WEIGHTS = 'adapter_model.safetensors';
const Q_PROJ = 'base_model.model.model.layers.0.self_attn.q_proj';

/** Splits a safetensors file into its header object, the header text and the data section. */
async function readWeights(dir: string) {
  const bytes = await fs.readFile(path.join(dir, WEIGHTS));
  const length = Number(bytes.readBigUInt64LE(0));
  const text = bytes.subarray(8, 8 + length).toString('utf8');
  return { header: JSON.parse(text) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>, text, data: bytes.subarray(8 + length) };
}

/** Writes a safetensors file from header text and data; `declaredLength` overrides the length prefix. */
async function writeWeights(dir: string, text: string, data: Buffer, declaredLength = Buffer.byteLength(text)) {
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(declaredLength));
  await fs.writeFile(path.join(dir, WEIGHTS), Buffer.concat([prefix, Buffer.from(text), data]));
}

/** Rewrites the header of a valid adapter; `edit` changes the parsed header in place. */
async function editHeader(dir: string, edit: (header: Awaited<ReturnType<typeof readWeights>>['header']) => void) {
  const { header, data } = await readWeights(dir);
  edit(header);
  await writeWeights(dir, JSON.stringify(header), data);
  return dir;
}

interface RejectedCase {
  name: string;
  build: () => Promise<string>;
  // A function where the message depends on the tiny model, which is read in beforeAll.
  message: RegExp | (() => string);
}

describe('compatibility gate on publish', () => {
  let user: User;
  let vocabulary: number;
  let hidden: number;

  beforeAll(async () => {
    user = await newUser('gate');
    const embedding = (await tinyManifest()).modules['model.embed_tokens']!;
    [vocabulary, hidden] = embedding.shape;
    const published = await publish(user.client, await writeAdapterFolder({ rank: 4 }), 'gated');
    expect(published.version).toBe(1);
  });

  const rejected: RejectedCase[] = [
    {
      name: 'shape mismatch',
      build: () => writeAdapterFolder({ rank: 4, mutate: (tensors) => { tensors[`${Q_PROJ}.lora_B.weight`] = { shape: [33, 4] }; } }),
      message: /tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_B\.weight: shape \[33, 4\], expected \[32, 4\]/,
    },
    {
      name: 'missing lora_B',
      build: () => writeAdapterFolder({ rank: 4, mutate: (tensors) => { delete tensors[`${Q_PROJ}.lora_B.weight`]; } }),
      message: /tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight has no matching lora_B/,
    },
    {
      name: 'duplicated tensor',
      build: async () => {
        const dir = await writeAdapterFolder({ rank: 4 });
        const { header, text, data } = await readWeights(dir);
        // The same key twice, with the same entry: JSON.parse keeps one and hides the other.
        const key = `${Q_PROJ}.lora_A.weight`;
        await writeWeights(dir, `{${JSON.stringify(key)}:${JSON.stringify(header[key])},${text.slice(1)}`, data);
        return dir;
      },
      message: /adapter_model\.safetensors: tensor base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight appears twice in the header/,
    },
    {
      name: 'header length beyond the file',
      build: async () => {
        const dir = await writeAdapterFolder({ rank: 4 });
        const { text, data } = await readWeights(dir);
        await writeWeights(dir, text, data, 1_000_000);
        return dir;
      },
      message: /adapter_model\.safetensors: header length 1000000 runs past the end of the \d+-byte file/,
    },
    {
      name: 'overlapping offsets',
      build: () => writeAdapterFolder({ rank: 4 }).then((dir) => editHeader(dir, (header) => {
        const [first, second] = Object.keys(header).sort((a, b) => header[a]!.data_offsets[0] - header[b]!.data_offsets[0]);
        const shift = header[first!]!.data_offsets[1] - header[second!]!.data_offsets[0] - 4;
        header[second!]!.data_offsets = header[second!]!.data_offsets.map((offset) => offset + shift) as [number, number];
      })),
      message: /adapter_model\.safetensors: tensors \S+ and \S+ overlap in the data section/,
    },
    {
      name: 'unknown dtype',
      build: () => writeAdapterFolder({ rank: 4 }).then((dir) => editHeader(dir, (header) => { header[`${Q_PROJ}.lora_A.weight`]!.dtype = 'Q4_K'; })),
      message: /adapter_model\.safetensors: tensor \S+q_proj\.lora_A\.weight: unknown dtype "Q4_K"; expected one of BOOL, /,
    },
    {
      name: 'resized vocabulary in embed_tokens',
      build: () => writeAdapterFolder({
        rank: 4,
        config: { modules_to_save: ['embed_tokens'] },
        mutate: (tensors) => { tensors['base_model.model.model.embed_tokens.weight'] = { shape: [vocabulary + 3, hidden] }; },
      }),
      message: () => `tensor base_model.model.model.embed_tokens.weight has shape [${vocabulary + 3}, ${hidden}], a vocabulary of ${vocabulary + 3} tokens, `
        + `but base model tiny-llama has a vocabulary of ${vocabulary} tokens: the vocabulary was resized`,
    },
    {
      name: 'pickle .bin only',
      build: async () => {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pickle-'));
        await fs.writeFile(path.join(dir, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj'] }));
        // Pickle protocol 4 opcodes; the server rejects the name and never reads the bytes.
        await fs.writeFile(path.join(dir, 'adapter_model.bin'), Buffer.from([0x80, 0x04, 0x95, 0x00, 0x2e]));
        return dir;
      },
      message: /adapter_model\.bin is a pickle file, which is never loaded here because unpickling can run arbitrary code; convert it with `PeftModel\.from_pretrained\(\.\.\.\)\.save_pretrained\(dir, safe_serialization=True\)` and upload adapter_model\.safetensors/,
    },
    {
      name: 'empty adapter_model.safetensors',
      build: async () => {
        const dir = await writeAdapterFolder({ rank: 4 });
        await fs.writeFile(path.join(dir, WEIGHTS), Buffer.alloc(0));
        return dir;
      },
      message: /adapter_model\.safetensors: file is empty \(0 bytes\)/,
    },
  ];

  const versions = async () => (await user.client.adapters.get.query({ namespace: user.namespace, name: 'gated' })).versions.map((v) => v.version);

  for (const testCase of rejected) {
    it(`rejects ${testCase.name}`, async () => {
      const dir = await testCase.build();
      const message = typeof testCase.message === 'function' ? testCase.message() : testCase.message;
      // Compared with the list just before, so one case that wrongly publishes fails alone.
      const before = await versions();
      await expect(publish(user.client, dir, 'gated')).rejects.toThrow(message);
      expect(await versions()).toEqual(before);
    });
  }

  it('leaves the adapter at version 1', async () => {
    expect(await versions()).toEqual([1]);
  });

  it('accepts newer PEFT config with warning', async () => {
    const dir = await writeAdapterFolder({ rank: 4, config: { peft_version: '9.9.9', option_from_the_future: { enabled: true } } });
    const published = await publish(user.client, dir, 'future-peft');
    expect(published.warnings).toEqual(['unknown key "option_from_the_future" in adapter_config.json was kept but not checked (written by a newer PEFT release?)']);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'future-peft' });
    expect(page.version.warnings).toEqual(published.warnings);
    expect(page.version.configSummary).toMatchObject({ peftVersion: '9.9.9' });
  });

  it('accepts target_modules regex string', async () => {
    const dir = await writeAdapterFolder({ rank: 4, config: { target_modules: '.*\\.(q_proj|v_proj)' } });
    const published = await publish(user.client, dir, 'regex-targets');
    expect(published.warnings).toEqual([]);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'regex-targets' });
    expect(page.version.configSummary).toMatchObject({ targetModules: '.*\\.(q_proj|v_proj)' });
    const serving = page.version.configSummary.serving as { engine: string; supported: boolean; reasons: string[] }[];
    expect(serving).toEqual([
      { engine: 'PEFT / transformers', supported: true, reasons: [] },
      { engine: 'vLLM', supported: true, reasons: [] },
      { engine: 'LoRAX', supported: true, reasons: [] },
    ]);
  });

  it('accepts bare target_modules name with warning', async () => {
    const dir = await writeAdapterFolder({ rank: 4, targets: ['q_proj'], config: { target_modules: 'q_proj' } });
    const published = await publish(user.client, dir, 'bare-target');
    expect(published.warnings).toEqual([expect.stringMatching(/^target_modules "q_proj" selects no module of base model tiny-llama \(a string is a regular expression/)]);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'bare-target' });
    const serving = page.version.configSummary.serving as { engine: string; supported: boolean }[];
    expect(serving.map((target) => [target.engine, target.supported])).toEqual([['PEFT / transformers', false], ['vLLM', true], ['LoRAX', true]]);
  });

  it('records mixed ranks of rank_pattern', async () => {
    const dir = await writeAdapterFolder({
      rank: 4,
      config: { rank_pattern: { v_proj: 2 } },
      mutate: (tensors) => {
        for (const name of Object.keys(tensors).filter((n) => n.includes('.v_proj.'))) {
          const shape = tensors[name]!.shape;
          tensors[name] = { shape: name.endsWith('lora_A.weight') ? [2, shape[1]!] : [shape[0]!, 2] };
        }
      },
    });
    const published = await publish(user.client, dir, 'mixed-ranks');
    expect(published.warnings).toEqual([]);
    const page = await user.client.adapters.get.query({ namespace: user.namespace, name: 'mixed-ranks' });
    expect(page.version.configSummary).toMatchObject({ rank: 4, ranks: [2, 4], rankPattern: { v_proj: 2 } });
    const lorax = (page.version.configSummary.serving as { engine: string; supported: boolean; reasons: string[] }[]).find((t) => t.engine === 'LoRAX')!;
    expect(lorax.supported).toBe(false);
    expect(lorax.reasons).toEqual([expect.stringContaining('LoRAX scales every module by lora_alpha and r from adapter_config.json (8 and 4)')]);
  });
});
