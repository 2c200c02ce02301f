import { describe, expect, it } from 'vitest';
import { badgeColor, badgeSvg } from '@/server/formats/badge-svg';
import { selfReportedMetrics } from '@/server/formats/model-index';
import { normalizedWords, OverlapIndex } from '@/server/formats/ngram-overlap';
import { parseLeaderboardParams } from '@/lib/leaderboard-params';

const LONG = 'The quick brown fox jumps over the lazy dog while the farmer watches from the old red barn';

describe('n-gram overlap', () => {
  it('normalizes case, punctuation and escapes', () => {
    expect(normalizedWords('Hello, WORLD!\\n 42-fold')).toEqual(['hello', 'world', 'n', '42', 'fold']);
  });

  it('flags an item sharing one 13-gram', () => {
    const index = new OverlapIndex([{ id: 'a', text: LONG }, { id: 'b', text: 'something else entirely that is long enough to have thirteen words in it for sure' }]);
    index.scan(`Prefix words. ${LONG.toUpperCase().slice(0, 70)}`);
    const report = index.report();
    expect(report).toMatchObject({ n: 13, checkedItems: 2, contaminatedItems: 1, overlap: 0.5, flagged: true, examples: ['a'] });
  });

  it('ignores 12 shared words and short items', () => {
    const words = LONG.split(' ');
    const index = new OverlapIndex([{ id: 'a', text: LONG }, { id: 'short', text: 'yes or no' }]);
    index.scan(words.slice(0, 12).join(' '));
    index.scan('yes or no');
    expect(index.report()).toMatchObject({ checkedItems: 1, contaminatedItems: 0, overlap: 0, flagged: false });
  });
});

describe('self-reported metrics', () => {
  it('reads model-index results', () => {
    const metrics = selfReportedMetrics({
      'model-index': [{ name: 'm', results: [{ task: { type: 'qa' }, dataset: { name: 'PubMedQA', type: 'pubmed_qa' }, metrics: [{ type: 'accuracy', value: '71.5%' }, { type: 'f1', value: 'n/a' }] }] }],
    });
    expect(metrics).toEqual([{ model: 'm', task: 'qa', dataset: 'PubMedQA', metric: 'accuracy', value: 0.715 }]);
  });

  it('skips malformed entries', () => {
    expect(selfReportedMetrics({ 'model-index': 'x' })).toEqual([]);
    expect(selfReportedMetrics({ 'model-index': [null, { results: [{ metrics: [{ type: 'acc', value: 1 }] }] }] })).toEqual([]);
    expect(selfReportedMetrics(undefined)).toEqual([]);
  });
});

describe('badge SVG', () => {
  it('escapes text and colours by gain', () => {
    const svg = badgeSvg('a<b', '50%', badgeColor(0.1));
    expect(svg).toContain('a&lt;b');
    expect(svg).not.toContain('a<b');
    expect(svg).toContain('#4c1');
    expect(badgeColor(null)).toBe('#9f9f9f');
    expect(badgeColor(-0.1)).toBe('#e05d44');
  });
});

describe('leaderboard URL parameters', () => {
  it('parses sorting and filters', () => {
    const parsed = parseLeaderboardParams('medical', new URLSearchParams('base=tiny&version=2&sort=gain&order=asc&q=demo&rank=8&clean=1'));
    expect(parsed).toEqual({ error: null, input: { suiteId: 'medical', baseModelId: 'tiny', suiteVersion: 2, sort: 'gain', order: 'asc', query: 'demo', loraRank: 8, hideContaminated: true } });
  });

  it('names the invalid value', () => {
    expect(parseLeaderboardParams('x', new URLSearchParams('rank=-1')).error).toBe('rank="-1" must be a positive whole number');
    expect(parseLeaderboardParams('x', new URLSearchParams('order=up')).error).toBe('order="up" must be asc or desc');
  });
});
