import { describe, expect, it } from 'vitest';
import { estimateTrainingMemory } from '../../server/services/requirements';
import { hyperparameters } from '../../server/contracts/runner';

const smollm2 = { hidden_size: 576, num_hidden_layers: 30, vocab_size: 49_152, intermediate_size: 1536, num_attention_heads: 9 };
const params = (overrides: Record<string, number>) => hyperparameters.parse({ rank: 16, alpha: 32, learningRate: 2e-4, epochs: 1, batchSize: 4, maxSeqLength: 1024, ...overrides });

describe('training memory estimate', () => {
  it('covers the measured SmolLM2-135M peak without wild excess', () => {
    const estimate = estimateTrainingMemory(134_515_008, smollm2, params({}));
    // Measured peak resident memory of that run: 16.9 GB.
    expect(estimate).toBeGreaterThan(16.9e9);
    expect(estimate).toBeLessThan(2 * 16.9e9);
  });

  it('grows with sequence length, batch and rank', () => {
    const base = estimateTrainingMemory(134_515_008, smollm2, params({}));
    expect(estimateTrainingMemory(134_515_008, smollm2, params({ maxSeqLength: 2048 }))).toBeGreaterThan(base);
    expect(estimateTrainingMemory(134_515_008, smollm2, params({ batchSize: 8 }))).toBeGreaterThan(base);
    expect(estimateTrainingMemory(134_515_008, smollm2, params({ rank: 64 }))).toBeGreaterThan(base);
  });
});
