import { describe, expect, it } from 'vitest';
import { pubmedqaSplits } from '../../scripts/demo-data';
import { arcTask, financialPhrasebankTask, mmluTask, parseCsv, SUITES } from '../../scripts/eval-suites';
import { classificationBaselines, taskBaselines } from '../../server/services/evaluations';

describe('suite task files', () => {
  it('parses quoted CSV fields', () => {
    expect(parseCsv('a,"b, c","say ""hi""\nthere"\r\nd,e,f\n')).toEqual([['a', 'b, c', 'say "hi"\nthere'], ['d', 'e', 'f']]);
  });

  it('builds every MMLU subject with its published item count', async () => {
    const anatomy = await mmluTask('anatomy');
    expect(anatomy).toHaveLength(135);
    expect(anatomy[0]!.choices).toEqual(['A', 'B', 'C', 'D']);
    expect(anatomy[0]!.prompt).toContain('\nA. ');
    expect((await mmluTask('professional_medicine')).length).toBe(272);
  });

  it('builds Financial PhraseBank and ARC', async () => {
    const fpb = await financialPhrasebankTask();
    expect(fpb).toHaveLength(2264);
    expect(new Set(fpb.map((row) => row.gold))).toEqual(new Set([0, 1, 2]));
    expect(await arcTask('easy')).toHaveLength(2376);
    const challenge = await arcTask('challenge');
    expect(challenge).toHaveLength(1172);
    expect(challenge[0]!.prompt.endsWith('Answer:')).toBe(false);
  });

  it('keeps the PubMedQA task out of training', async () => {
    const { train, task } = await pubmedqaSplits();
    const trainPrompts = new Set(train.map((row) => row.prompt));
    expect(task.filter((row) => trainPrompts.has(row.prompt))).toEqual([]);
  });

  it('defines three suites with distinct task ids', () => {
    expect(SUITES.map((suite) => suite.id)).toEqual(['medical', 'finance', 'general']);
    const ids = SUITES.flatMap((suite) => suite.tasks.map((task) => task.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(SUITES[0]!.tasks.map((task) => task.id)).toContain('pubmedqa');
  });
});

describe('macro-F1 baselines', () => {
  it('scores always-yes on PubMedQA-like labels', () => {
    // 3 yes, 1 no, 1 maybe: always "yes" has F1(yes) = 2*0.6/1.6 = 0.75 and 0 elsewhere.
    expect(classificationBaselines([3, 1, 1], 3, 5).majority).toBeCloseTo(0.25, 10);
  });

  it('adds macro-F1 only for classification tasks', () => {
    const line = (choices: string[], gold: number) => JSON.stringify({ id: 'x', prompt: 'p', choices, gold });
    const classification = taskBaselines([line(['yes', 'no'], 0), line(['yes', 'no'], 0), line(['yes', 'no'], 1)].join('\n'));
    // Majority share 2/3: F1 = (4/3)/(5/3) = 0.8 for "yes", 0 for "no".
    expect(classification.baselines.majority.macroF1).toBeCloseTo(0.4, 10);
    // Random: F1(yes) = 2*(2/3)*(1/2)/(2/3+1/2) = 4/7, F1(no) = 2*(1/3)*(1/2)/(1/3+1/2) = 2/5.
    expect(classification.baselines.randomMacroF1).toBeCloseTo((4 / 7 + 2 / 5) / 2, 10);
    const mixed = taskBaselines([line(['a', 'b'], 0), line(['c', 'd'], 1)].join('\n'));
    expect(mixed.baselines.majority.macroF1).toBeUndefined();
    expect(mixed.baselines.randomMacroF1).toBeUndefined();
  });
});
