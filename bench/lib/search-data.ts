/**
 * Deterministic synthetic registry for the search benchmark: namespaces, adapters with one
 * version each, model cards and listing facts. Each version is derived with the parsers that
 * publishing runs (parsePeftConfig, checkLoraTensors, parseModelCard, servingTargets). Each
 * adapter row follows the rules of refreshListing, so the rows match what
 * publishAdapterVersion writes. bench/lib/search-seed.ts checks both against the app.
 */
import type { ModuleShape } from '../../drizzle/schema';
import { checkAdapter } from '../../server/formats/adapter-gate';
import { parseModelCard } from '../../server/formats/model-card';
import { parsePeftConfig } from '../../server/formats/peft-config';
import { ATTENTION_MODULES, baseModules, BASE_MODELS, loraTensorTable, MLP_MODULES, safetensorsSize, sha256Hex, type BenchBaseModel } from './base-models';

/** mulberry32: a small seeded generator, so every run seeds the same registry. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }

  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
    let roll = this.next() * total;
    for (const [value, weight] of choices) {
      roll -= weight;
      if (roll < 0) return value;
    }
    return choices[choices.length - 1]![0];
  }

  normal(): number {
    const u = Math.max(this.next(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  logNormal(mu: number, sigma: number): number {
    return Math.exp(mu + sigma * this.normal());
  }

  uuid(): string {
    const hex = Array.from({ length: 32 }, () => Math.floor(this.next() * 16).toString(16));
    hex[12] = '4';
    hex[16] = '89ab'[Math.floor(this.next() * 4)]!;
    const s = hex.join('');
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }
}

/** Samples ranks 1..n with probability proportional to 1/rank^s (Zipf), by binary search. */
export class Zipf {
  private readonly cdf: Float64Array;

  constructor(n: number, s: number) {
    this.cdf = new Float64Array(n);
    let total = 0;
    for (let k = 1; k <= n; k++) {
      total += 1 / k ** s;
      this.cdf[k - 1] = total;
    }
    for (let i = 0; i < n; i++) this.cdf[i]! /= total;
  }

  /** Returns a 0-based index; index 0 is the most frequent. */
  sample(rng: Rng): number {
    const roll = rng.next();
    let low = 0;
    let high = this.cdf.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.cdf[mid]! < roll) low = mid + 1;
      else high = mid;
    }
    return low;
  }
}

export const DOMAINS: [string, number, string[]][] = [
  ['medical', 14, ['patient', 'clinical', 'diagnosis', 'radiology', 'oncology', 'cardiology', 'pharmacology', 'symptom', 'triage', 'discharge', 'biomedical', 'pubmed', 'dosage', 'pathology', 'genomics', 'epidemiology', 'nursing', 'pediatric', 'mri', 'sepsis', 'diabetes', 'hypertension', 'therapeutic', 'adverse', 'trial']],
  ['legal', 8, ['contract', 'clause', 'statute', 'litigation', 'jurisdiction', 'precedent', 'compliance', 'gdpr', 'indemnification', 'liability', 'tort', 'plaintiff', 'defendant', 'court', 'ruling', 'paralegal', 'regulatory', 'patent', 'arbitration', 'lease', 'counsel']],
  ['finance', 9, ['earnings', 'portfolio', 'equity', 'bond', 'derivative', 'risk', 'credit', 'loan', 'fraud', 'audit', 'accounting', 'invoice', 'quarterly', 'hedge', 'valuation', 'fintech', 'banking', 'trading', 'ledger', 'tax', 'dividend']],
  ['code', 16, ['python', 'javascript', 'typescript', 'rust', 'sql', 'bash', 'refactoring', 'debugging', 'api', 'repository', 'function', 'compiler', 'docstring', 'leetcode', 'kotlin', 'golang', 'java', 'regex', 'linting', 'snippet', 'pull-request']],
  ['math', 7, ['algebra', 'geometry', 'calculus', 'arithmetic', 'proof', 'theorem', 'equation', 'olympiad', 'word-problem', 'probability', 'statistics', 'combinatorics', 'integer', 'fraction', 'matrix']],
  ['science', 4, ['physics', 'chemistry', 'biology', 'molecule', 'protein', 'experiment', 'hypothesis', 'astronomy', 'climate', 'materials', 'quantum', 'enzyme', 'reaction', 'genome']],
  ['education', 4, ['tutoring', 'lesson', 'quiz', 'curriculum', 'student', 'teacher', 'homework', 'grading', 'exam', 'vocabulary', 'reading', 'feedback', 'classroom']],
  ['customer-support', 8, ['ticket', 'helpdesk', 'refund', 'order', 'shipping', 'complaint', 'faq', 'agent', 'escalation', 'chatbot', 'intent', 'troubleshooting', 'warranty']],
  ['chat', 12, ['conversation', 'assistant', 'persona', 'roleplay', 'dialogue', 'friendly', 'multi-turn', 'instruction-following', 'helpful', 'harmless', 'empathy', 'small-talk']],
  ['multilingual', 5, ['translation', 'spanish', 'french', 'german', 'japanese', 'chinese', 'hindi', 'arabic', 'portuguese', 'korean', 'swahili', 'low-resource', 'cross-lingual']],
  ['creative-writing', 4, ['poetry', 'story', 'fiction', 'screenplay', 'lyrics', 'haiku', 'narrative', 'character', 'worldbuilding', 'prose', 'plot']],
  ['e-commerce', 3, ['product', 'catalog', 'listing', 'review', 'recommendation', 'attribute', 'pricing', 'sku', 'search-query', 'seo']],
  ['cybersecurity', 3, ['malware', 'vulnerability', 'cve', 'phishing', 'threat', 'intrusion', 'exploit', 'forensics', 'siem', 'log-analysis', 'incident']],
];
// Adapters published without a domain (no --domain and none in the model card).
const NO_DOMAIN_WEIGHT = 3;

export const TASKS = ['summarization', 'classification', 'extraction', 'question-answering', 'generation', 'translation', 'reasoning', 'retrieval',
  'ner', 'sentiment-analysis', 'rewriting', 'tool-use', 'function-calling', 'json-output', 'chain-of-thought', 'instruction-tuning'];

export const DATASETS = ['pubmedqa', 'medmcqa', 'medqa', 'mmlu', 'gsm8k', 'math', 'humaneval', 'mbpp', 'code-alpaca', 'dolly-15k', 'oasst1', 'alpaca',
  'ultrachat', 'sharegpt', 'finqa', 'fiqa', 'legalbench', 'cuad', 'casehold', 'squad', 'triviaqa', 'natural-questions', 'boolq', 'arc', 'hellaswag',
  'winogrande', 'xsum', 'cnn-dailymail', 'samsum', 'billsum', 'multi-news', 'flores-200', 'opus-100', 'tatoeba', 'wmt19', 'sciq', 'pubmed-abstracts',
  'mimic-notes', 'emrqa', 'ledgar', 'eurlex', 'financial-phrasebank', 'tat-qa', 'convfinqa', 'the-stack', 'codesearchnet', 'apps', 'spider',
  'wikisql', 'metamathqa', 'orca-math', 'aqua-rat', 'commonsense-qa', 'piqa', 'openbookqa', 'writingprompts', 'tinystories', 'amazon-reviews',
  'banking77', 'clinc150', 'multiwoz', 'cve-descriptions', 'phishing-emails'];

const ML_WORDS = ['adapter', 'fine-tuned', 'instruction', 'dataset', 'evaluation', 'accuracy', 'benchmark', 'tokens', 'learning', 'rate', 'epochs',
  'batch', 'gradient', 'checkpoint', 'quantization', 'inference', 'prompt', 'completion', 'alignment', 'preference', 'reward', 'loss', 'validation',
  'training', 'model', 'weights', 'precision', 'recall', 'f1', 'perplexity', 'context', 'window', 'sequence', 'length', 'template', 'chat', 'system',
  'response', 'output', 'input', 'format', 'schema', 'latency', 'throughput', 'memory', 'gpu', 'cpu', 'bf16', 'fp16', 'int8', 'qlora', 'dpo', 'sft',
  'rlhf', 'distillation', 'teacher', 'synthetic', 'curated', 'filtered', 'deduplicated', 'held-out', 'split', 'test', 'baseline', 'zero-shot',
  'few-shot', 'greedy', 'sampling', 'temperature', 'decoding', 'beam', 'hallucination', 'factuality', 'safety', 'bias', 'robustness', 'domain',
  'shift', 'generalization', 'overfitting', 'regularization', 'dropout', 'warmup', 'scheduler', 'cosine', 'linear', 'optimizer', 'adamw',
  'tokenizer', 'vocabulary', 'embedding', 'attention', 'projection', 'layer', 'rank', 'alpha', 'scaling', 'merge', 'serving', 'vllm', 'peft',
  'transformers', 'pytorch', 'license', 'limitations', 'intended', 'use', 'users', 'downstream', 'research', 'production', 'experimental'];

const FILLERS = ['the', 'of', 'and', 'for', 'with', 'to', 'in', 'on', 'from', 'by', 'a', 'this', 'that', 'is', 'was', 'are', 'when', 'which'];

const LICENSES: [string | null, number][] = [
  ['apache-2.0', 38], ['mit', 18], ['cc-by-4.0', 7], ['cc-by-nc-4.0', 6], ['cc-by-sa-4.0', 3], ['openrail', 3], ['gpl-3.0', 2], ['bsd-3-clause', 2],
  ['other', 3], [null, 10],
];
const LLAMA_LICENSES: Record<string, string> = { 'llama-3.2-1b-instruct': 'llama3.2', 'llama-3.1-8b-instruct': 'llama3.1' };

export const RANKS: [number, number][] = [[4, 10], [8, 30], [16, 32], [32, 15], [64, 9], [128, 4]];

const TARGET_SETS: [string[], number][] = [
  [['q_proj', 'v_proj'], 35],
  [ATTENTION_MODULES, 25],
  [[...ATTENTION_MODULES, ...MLP_MODULES], 32],
  [MLP_MODULES, 8],
];

const SYLLABLES = ['ka', 'lo', 'mi', 'ra', 'te', 'vo', 'zu', 'ne', 'pi', 'sa', 'do', 'ri', 'ma', 'ko', 'tu', 'be', 'xi', 'ga', 'fe', 'ly', 'qu', 'wa',
  'yo', 'ze', 'hu', 'ci', 'jo', 'ven', 'tor', 'lin', 'mar', 'sol', 'kel', 'dra', 'fin', 'gor', 'pex', 'rin', 'tal', 'vex'];

/** Makes `count` distinct pronounceable words; the long tail of the model-card vocabulary. */
function pseudoWords(rng: Rng, count: number, exclude: Set<string>): string[] {
  const words = new Set<string>();
  while (words.size < count) {
    const parts = rng.int(2, 4);
    let word = '';
    for (let i = 0; i < parts; i++) word += rng.pick(SYLLABLES);
    if (!exclude.has(word)) words.add(word);
  }
  return [...words];
}

export interface Vocabulary {
  rareWords: string[];
  rareZipf: Zipf;
  mlZipf: Zipf;
  tagPool: string[];
  tagZipf: Zipf;
  domainZipf: Zipf;
}

export function buildVocabulary(rng: Rng): Vocabulary {
  const known = new Set([...ML_WORDS, ...DOMAINS.flatMap(([, , terms]) => terms), ...TASKS, ...DATASETS]);
  const rareWords = pseudoWords(rng, 8000, known);
  const tagPool = [...TASKS, ...DOMAINS.flatMap(([, , terms]) => terms.slice(0, 8)), 'instruction-tuned', 'sft', 'dpo', 'qlora', '4-bit', '8-bit',
    'english', 'multilingual', 'conversational', 'text-generation', 'experimental', 'production-ready', 'research', 'distilled', 'synthetic-data'];
  return {
    rareWords,
    rareZipf: new Zipf(rareWords.length, 1.05),
    mlZipf: new Zipf(ML_WORDS.length, 0.9),
    tagPool,
    tagZipf: new Zipf(tagPool.length, 1.0),
    domainZipf: new Zipf(25, 0.7),
  };
}

export interface SeedNamespace {
  id: string;
  name: string;
  userId: string;
  email: string;
}

export function generateNamespaces(rng: Rng, vocabulary: Vocabulary, count: number): SeedNamespace[] {
  const names = new Set<string>();
  const namespaces: SeedNamespace[] = [];
  const suffixes = ['', '', '', '-lab', '-ai', '-ml', '-research', '-dev', '-nlp'];
  while (namespaces.length < count) {
    const base = rng.pick(vocabulary.rareWords).slice(0, 24);
    const name = `${base}${rng.pick(suffixes)}${rng.chance(0.5) ? rng.int(1, 999) : ''}`;
    if (names.has(name) || !/^[a-z0-9][a-z0-9-]{1,38}$/.test(name)) continue;
    names.add(name);
    namespaces.push({ id: rng.uuid(), name, userId: rng.uuid(), email: `${name}@bench.example.com` });
  }
  return namespaces;
}

/** Rows of one seeded adapter: the adapter, its version, its files and its score. */
export interface SeedAdapter {
  adapter: Record<string, unknown>;
  version: Record<string, unknown>;
  files: { path: string; sha256: string; size: number; s3Key: string }[];
  // Accuracy on the benchmark task of the adapter's domain, when it was evaluated.
  score: { taskId: string; correct: number; total: number } | null;
  // What a client would send to publish this adapter through the API.
  publish: {
    baseModelId: string;
    configText: string;
    modelCard: string | null;
    tensors: Parameters<typeof loraTensorTable>[1];
    description: string;
    domain: string | undefined;
    label: string | null;
    changelog: string | null;
  };
  // Whether the adapter is yanked, deleted, deprecated or scored: states publishing alone never produces.
  lifecycle: boolean;
}

export interface GenerationContext {
  rng: Rng;
  vocabulary: Vocabulary;
  namespaces: SeedNamespace[];
  namespaceZipf: Zipf;
  // Adapter names already used, per namespace id.
  takenNames: Map<string, Set<string>>;
  // Benchmark tasks by domain, with their item counts.
  tasks: Map<string, { id: string; itemCount: number }>;
  now: number;
}

interface ConfigFacts {
  summary: Record<string, unknown>;
  safetensorsBytes: number;
}

const configCache = new Map<string, ConfigFacts>();
const moduleCache = new Map<string, Record<string, ModuleShape>>();

function modulesOf(base: BenchBaseModel): Record<string, ModuleShape> {
  let modules = moduleCache.get(base.id);
  if (!modules) {
    modules = baseModules(base);
    moduleCache.set(base.id, modules);
  }
  return modules;
}

/**
 * Builds config_summary exactly as publishAdapterVersion does, from the real parsers and the
 * tensor table PEFT would save. Throws if the compatibility gate would reject the adapter.
 */
function configFacts(base: BenchBaseModel, configText: string, tensorOptions: Parameters<typeof loraTensorTable>[1]): ConfigFacts {
  const key = `${base.id}\n${configText}\n${JSON.stringify(tensorOptions)}`;
  const cached = configCache.get(key);
  if (cached) return cached;
  const config = parsePeftConfig(configText);
  const modules = modulesOf(base);
  const tensors = loraTensorTable(modules, tensorOptions);
  const compatibility = checkAdapter(config, { headerLength: 0, tensors, metadata: {} }, {
    id: base.id, modules, architecture: base.architecture, parameterCount: base.parameterCount,
  });
  if (compatibility.errors.length > 0) throw new Error(`seeded adapter would be rejected: ${compatibility.errors.slice(0, 3).join('; ')}`);
  const summary = compatibility.summary;
  const facts = { summary, safetensorsBytes: safetensorsSize(tensors) };
  configCache.set(key, facts);
  return facts;
}

function sortedJson(value: Record<string, unknown>): string {
  return JSON.stringify(Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b))), null, 2);
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Makes one sentence that mixes domain terms, common ML words and the long-tail vocabulary. */
function sentence(ctx: GenerationContext, terms: string[]): string {
  const { rng, vocabulary } = ctx;
  const words: string[] = [];
  const length = rng.int(6, 18);
  for (let i = 0; i < length; i++) {
    const roll = rng.next();
    if (roll < 0.3) words.push(rng.pick(FILLERS));
    else if (roll < 0.52) words.push(terms[Math.min(terms.length - 1, vocabulary.domainZipf.sample(rng))]!);
    else if (roll < 0.77) words.push(ML_WORDS[vocabulary.mlZipf.sample(rng)]!);
    else if (roll < 0.92) words.push(vocabulary.rareWords[vocabulary.rareZipf.sample(rng)]!);
    else words.push(rng.chance(0.5) ? rng.pick(TASKS) : rng.pick(DATASETS));
  }
  return `${capitalize(words.join(' '))}.`;
}

function paragraph(ctx: GenerationContext, terms: string[], sentences: number): string {
  return Array.from({ length: sentences }, () => sentence(ctx, terms)).join(' ');
}

function uniqueName(ctx: GenerationContext, namespaceId: string, proposed: string): string {
  let used = ctx.takenNames.get(namespaceId);
  if (!used) {
    used = new Set();
    ctx.takenNames.set(namespaceId, used);
  }
  const base = proposed.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 80) || 'adapter';
  let name = base;
  for (let n = 2; used.has(name); n++) name = `${base}-${n}`;
  used.add(name);
  return name;
}

const BASE_SHORT: Record<string, string> = {
  'smollm2-135m-instruct': 'smollm2-135m', 'smollm2-360m-instruct': 'smollm2-360m', 'qwen2.5-0.5b-instruct': 'qwen2.5-0.5b',
  'llama-3.2-1b-instruct': 'llama3.2-1b', 'llama-3.1-8b-instruct': 'llama3.1-8b', 'mistral-7b-instruct-v0.3': 'mistral-7b',
};

/**
 * Generates the next adapter: every row publishing would write for it, and its listing facts.
 * `namespace` overrides the random owner, for adapters that are really published through the API.
 */
export function generateAdapter(ctx: GenerationContext, namespace = ctx.namespaces[ctx.namespaceZipf.sample(ctx.rng)]!): SeedAdapter {
  const { rng, vocabulary } = ctx;
  const base = rng.weighted(BASE_MODELS.map((model) => [model, model.weight] as const));
  const domainEntry = rng.weighted<[string, number, string[]] | null>([...DOMAINS.map((entry) => [entry, entry[1]] as const), [null, NO_DOMAIN_WEIGHT]]);
  const domain = domainEntry?.[0] ?? null;
  const terms = domainEntry?.[2] ?? ML_WORDS.slice(0, 25);
  const task = rng.pick(TASKS);
  const dataset = rng.pick(DATASETS);
  const rank = rng.weighted(RANKS);
  const targets = rng.weighted(TARGET_SETS);
  const shortBase = BASE_SHORT[base.id]!;

  const namePattern = rng.int(0, 4);
  const proposedName = [
    `${shortBase}-${dataset}-lora`,
    `${rng.pick(terms)}-${task}-r${rank}`,
    `${rng.pick(vocabulary.rareWords)}-${rng.pick(terms)}`,
    `${shortBase}-${domain ?? 'general'}-${task}${rng.chance(0.4) ? `-v${rng.int(2, 5)}` : ''}`,
    `${rng.pick(terms)}-${rng.pick(terms)}-${shortBase}`,
  ][namePattern]!;
  const name = uniqueName(ctx, namespace.id, proposedName);

  // adapter_config.json as PEFT writes it (sorted keys, indent 2).
  const useDora = rng.chance(0.03);
  const useRslora = rng.chance(0.04);
  const modulesToSave = rng.chance(0.03) ? ['lm_head'] : null;
  const dtype = rng.weighted([['F32', 60], ['BF16', 35], ['F16', 5]] as const);
  const config = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: base.hubId, bias: rng.chance(0.02) ? 'lora_only' : 'none', fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null, loftq_config: {},
    lora_alpha: rank * rng.pick([1, 2, 2, 2, 4]), lora_dropout: rng.pick([0, 0.05, 0.05, 0.1]), megatron_config: null, megatron_core: 'megatron.core',
    modules_to_save: modulesToSave, peft_type: 'LORA', r: rank, rank_pattern: {}, revision: null, target_modules: targets, task_type: 'CAUSAL_LM',
    use_dora: useDora, use_rslora: useRslora,
    ...(rng.chance(0.5) ? { peft_version: rng.pick(['0.13.2', '0.14.0', '0.15.2', '0.17.1']) } : {}),
  };
  const configText = sortedJson(config);
  const tensorOptions = { rank, targets, modulesToSave: modulesToSave ?? [], dtype };
  const facts = configFacts(base, configText, tensorOptions);

  const description = rng.chance(0.72)
    ? `${capitalize(task)} adapter for ${base.displayName}${domain ? ` in the ${domain} domain` : ''}, trained on ${dataset}. ${sentence(ctx, terms)}`
    : '';
  // Publishing through the CLI passes --domain; otherwise the model card's `domain` applies.
  const domainFromInput = domain !== null && rng.chance(0.7);

  const cardKind = rng.weighted([['front-matter', 94], ['no-front-matter', 2], ['none', 4]] as const);
  const license = LLAMA_LICENSES[base.id] && rng.chance(0.6) ? LLAMA_LICENSES[base.id]! : rng.weighted(LICENSES);
  const tags = new Set<string>(['lora', 'peft']);
  if (rng.chance(0.3)) tags.delete('peft');
  if (domain) tags.add(domain);
  tags.add(task);
  tags.add(base.family);
  const extraTags = rng.int(0, 6);
  for (let i = 0; i < extraTags; i++) tags.add(vocabulary.tagPool[vocabulary.tagZipf.sample(rng)]!);

  let modelCard: string | null = null;
  if (cardKind !== 'none') {
    const front = [
      '---',
      `base_model: ${base.hubId}`,
      'library_name: peft',
      ...(license ? [`license: ${license}`] : []),
      'tags:', ...[...tags].map((tag) => `- ${tag}`),
      'datasets:', `- ${dataset}`, ...(rng.chance(0.3) ? [`- ${rng.pick(DATASETS)}`] : []),
      'language:', `- ${domain === 'multilingual' ? rng.pick(['fr', 'de', 'es', 'ja', 'zh']) : 'en'}`,
      ...(domain && !domainFromInput ? [`domain: ${domain}`] : []),
      ...(rng.chance(0.4) ? ['pipeline_tag: text-generation'] : []),
      '---',
      '',
    ].join('\n');
    const sentences = Math.min(400, Math.max(3, Math.round(rng.logNormal(Math.log(18), 0.8))));
    const sections = [
      `# ${name}`, '', description || sentence(ctx, terms), '',
      '## Model description', '', paragraph(ctx, terms, Math.ceil(sentences * 0.3)), '',
      '## Intended uses & limitations', '', paragraph(ctx, terms, Math.ceil(sentences * 0.2)), '',
      '## Training data', '', `Fine-tuned on ${dataset}. ${paragraph(ctx, terms, Math.ceil(sentences * 0.2))}`, '',
      '## Training procedure', '', '### Training hyperparameters', '',
      `- learning_rate: ${rng.pick(['0.0001', '0.0002', '0.0003', '5e-05'])}`, `- train_batch_size: ${rng.pick([4, 8, 16, 32])}`,
      `- num_epochs: ${rng.int(1, 5)}`, `- lora_r: ${rank}`, `- lora_alpha: ${config.lora_alpha}`, `- lora_dropout: ${config.lora_dropout}`, '',
      '## Evaluation', '', paragraph(ctx, terms, Math.ceil(sentences * 0.3)), '',
      '### Framework versions', '', `- PEFT ${config.peft_version ?? '0.13.2'}`, '- Transformers 4.46.0', '- Pytorch 2.5.1', '',
    ].join('\n');
    modelCard = cardKind === 'front-matter' ? front + sections : sections;
  }

  // The steps of publishAdapterVersion, in its order.
  const parsedConfig = parsePeftConfig(configText);
  const warnings = [...parsedConfig.warnings];
  if (parsedConfig.baseModelNameOrPath && parsedConfig.baseModelNameOrPath !== base.id) {
    warnings.push(`adapter_config.json names base model ${JSON.stringify(parsedConfig.baseModelNameOrPath)}; it was checked against ${base.id}`);
  }
  let cardMetadata: Record<string, unknown> = {};
  if (modelCard !== null) {
    const card = parseModelCard(modelCard);
    if (card.errors.length > 0) throw new Error(`seeded model card would be rejected: ${card.errors.join('; ')}`);
    warnings.push(...card.warnings);
    const sameBase = (candidate: string) => candidate === base.id || candidate.split('/').pop()!.toLowerCase() === base.id.toLowerCase();
    if (card.metadata.baseModel.length > 0 && !card.metadata.baseModel.some(sameBase)) {
      warnings.push(`README.md names base_model ${card.metadata.baseModel.join(', ')}; the adapter was checked against ${base.id}`);
    }
    const { raw, ...fields } = card.metadata;
    cardMetadata = { ...fields, extra: raw };
  } else {
    warnings.push('the version has no README.md model card; add one with YAML front matter (base_model, library_name: peft, license, tags) so people can find and trust it');
  }
  const inputDomain = domainFromInput ? domain : undefined;
  const publishedDomain = inputDomain ?? (typeof cardMetadata.domain === 'string' ? cardMetadata.domain : null);

  const configBytes = Buffer.byteLength(configText);
  const safetensorsSha = sha256Hex(`bench-safetensors:${namespace.name}/${name}`);
  const files = [
    { path: 'adapter_config.json', sha256: sha256Hex(configText), size: configBytes },
    { path: 'adapter_model.safetensors', sha256: safetensorsSha, size: facts.safetensorsBytes },
    ...(modelCard !== null ? [{ path: 'README.md', sha256: sha256Hex(modelCard), size: Buffer.byteLength(modelCard) }] : []),
  ].map((file, index) => ({
    ...file,
    // A file larger than one 16 MiB part is uploaded in parts to a key of its own.
    s3Key: file.size > 16 * 1024 * 1024 ? `blobs/upload/${rng.uuid()}/${index}` : `blobs/sha256/${file.sha256.slice(0, 2)}/${file.sha256}`,
  }));
  const sizeBytes = files.reduce((sum, file) => sum + file.size, 0);

  // Newer adapters are more common: the age in days is skewed towards zero.
  const createdAt = new Date(ctx.now - rng.next() ** 2 * 730 * 86_400_000 - rng.int(0, 86_399_999));
  const downloads = rng.chance(0.3) ? 0 : Math.min(5_000_000, Math.floor(rng.logNormal(1.5, 2.3)));
  const likes = Math.min(200_000, Math.floor(downloads * 0.02 * rng.logNormal(0, 1)));
  const yanked = rng.chance(0.007);
  const deleted = rng.chance(0.01);
  const deprecated = !deleted && rng.chance(0.015);

  const benchmarkTask = publishedDomain ? ctx.tasks.get(publishedDomain) : undefined;
  let score: SeedAdapter['score'] = null;
  if (benchmarkTask && rng.chance(0.3)) {
    const accuracy = Math.min(0.98, Math.max(0.05, 0.5 + 0.12 * rng.normal()));
    const correct = Math.round(accuracy * benchmarkTask.itemCount);
    score = { taskId: benchmarkTask.id, correct, total: benchmarkTask.itemCount };
  }
  const bestScore = score ? score.correct / score.total : null;

  // refreshListing's rules: facts come from the newest version that is not yanked.
  const card = cardMetadata as { license?: string | null; tags?: string[] };
  const listedTags = !yanked && Array.isArray(card.tags) ? card.tags : [];
  const body = (yanked ? '' : (modelCard ?? '')).replace(/^\uFEFF?---[\s\S]*?\n---[ \t]*\r?\n/, '').slice(0, 20_000);
  const adapterId = rng.uuid();
  const label = rng.chance(0.5) ? rng.pick(['1.0.0', '0.1.0', '0.2.0', '1.1.0', '2.0.0']) : null;
  const changelog = rng.chance(0.2) ? 'First release.' : null;
  const adapter = {
    id: adapterId,
    namespace_id: namespace.id,
    name,
    description,
    domain: publishedDomain,
    base_model_id: base.id,
    downloads,
    likes,
    deprecated_at: deprecated ? new Date(createdAt.getTime() + 86_400_000).toISOString() : null,
    deprecation_message: deprecated ? 'Superseded by a newer release; see the model card.' : null,
    replaced_by: null,
    deleted_at: deleted ? new Date(createdAt.getTime() + 2 * 86_400_000).toISOString() : null,
    purged_at: null,
    latest_version: yanked ? null : 1,
    rank: yanked ? null : facts.summary.rank,
    peft_type: yanked ? null : facts.summary.peftType,
    task_type: yanked ? null : config.task_type,
    license: !yanked && typeof card.license === 'string' ? card.license : null,
    tags: listedTags,
    size_bytes: yanked ? null : sizeBytes,
    best_score: bestScore,
    search_text: [namespace.name, name, description, publishedDomain ?? '', listedTags.join(' '), body].join(' '),
    created_at: createdAt.toISOString(),
    updated_at: createdAt.toISOString(),
  };
  const version = {
    adapter_id: adapterId,
    version: 1,
    config: JSON.parse(configText),
    config_summary: facts.summary,
    label,
    changelog,
    model_card: modelCard,
    card_metadata: cardMetadata,
    size_bytes: sizeBytes,
    warnings,
    lineage: null,
    source_job_id: null,
    published_by: namespace.userId,
    downloads,
    yanked_at: yanked ? new Date(createdAt.getTime() + 3_600_000).toISOString() : null,
    yank_reason: yanked ? 'Trained on the wrong split; use a later version.' : null,
    created_at: createdAt.toISOString(),
  };
  return {
    adapter,
    version,
    files,
    score,
    publish: { baseModelId: base.id, configText, modelCard, tensors: tensorOptions, description, domain: inputDomain ?? undefined, label, changelog },
    lifecycle: yanked || deleted || deprecated || score !== null,
  };
}
