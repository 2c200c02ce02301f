import { adaptersRouter } from './routers/adapters';
import { authRouter } from './routers/auth';
import { baseModelsRouter } from './routers/base-models';
import { datasetsRouter } from './routers/datasets';
import { evalsRouter } from './routers/evals';
import { finetuneRouter } from './routers/finetune';
import { playgroundRouter } from './routers/playground';
import { runnerRouter } from './routers/runner';
import { teamsRouter } from './routers/teams';
import { uploadsRouter } from './routers/uploads';
import { createCallerFactory, router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  adapters: adaptersRouter,
  baseModels: baseModelsRouter,
  datasets: datasetsRouter,
  finetune: finetuneRouter,
  evals: evalsRouter,
  playground: playgroundRouter,
  runner: runnerRouter,
  teams: teamsRouter,
  uploads: uploadsRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
