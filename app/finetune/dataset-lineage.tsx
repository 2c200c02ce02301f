/** A readable summary of a data set version's lineage: upload mapping, cleaning, split and mix. */

interface Lineage {
  upload?: { filename: string; fileType: string; mapping: Record<string, string | undefined> };
  derivedFrom?: { name: string; version: number };
  cleaning?: { counts: Record<string, number>; before: number; after: number };
  split?: { validationFraction: number; seed: number; train: number; validation: number };
  mix?: { source: string; license: string | null; ratio: number; seed: number; count: number; requested: number };
}

// Label and verb of each cleaning step's count: steps that rewrite text change examples, the others remove them.
const STEP_LABELS: Record<string, [string, 'changed' | 'removed']> = {
  normalizedUnicode: ['Unicode NFC', 'changed'],
  normalizedWhitespace: ['Whitespace', 'changed'],
  maskedEmails: ['Emails masked', 'changed'],
  maskedPhones: ['Phone numbers masked', 'changed'],
  maskedIds: ['ID numbers masked', 'changed'],
  droppedEmpty: ['Empty examples', 'removed'],
  droppedOverLong: ['Over-long examples', 'removed'],
  exactDuplicates: ['Exact duplicates', 'removed'],
  nearDuplicates: ['Near duplicates', 'removed'],
};

export function DatasetLineage({ lineage }: { lineage: unknown }) {
  const data = lineage as Lineage | null;
  if (!data) return null;
  return (
    <ul data-testid="dataset-lineage">
      {data.upload && (
        <li>From {data.upload.fileType.toUpperCase()} file {data.upload.filename}, columns: {Object.entries(data.upload.mapping).filter(([, c]) => c).map(([role, c]) => `${role} = ${c}`).join(', ')}</li>
      )}
      {data.derivedFrom && <li>Derived from {data.derivedFrom.name} v{data.derivedFrom.version}</li>}
      {data.cleaning && (
        <li>Cleaning: {data.cleaning.before} → {data.cleaning.after} examples
          <ul>{Object.entries(data.cleaning.counts).filter(([, n]) => n > 0).map(([step, n]) => (
            <li key={step}>{STEP_LABELS[step]?.[0] ?? step}: {STEP_LABELS[step]?.[1] ?? 'changed'} {n}</li>
          ))}</ul>
        </li>
      )}
      {data.split && <li>Validation split: {data.split.validation} of {data.split.train + data.split.validation} examples ({Math.round(data.split.validationFraction * 100)}%, seed {data.split.seed}), kept apart from training</li>}
      {data.mix && (
        <li data-testid="dataset-mix">General data: {data.mix.count} examples of {data.mix.source}{data.mix.license ? ` (${data.mix.license})` : ''}, ratio {Math.round(data.mix.ratio * 100)}%, seed {data.mix.seed}
          {data.mix.count < data.mix.requested ? ` (${data.mix.requested} requested; the general set has no more)` : ''}</li>
      )}
    </ul>
  );
}
