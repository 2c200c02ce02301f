import { adaptersRouter } from './routers/adapters';
import { authRouter } from './routers/auth';
import { baseModelsRouter } from './routers/base-models';
import { datasetsRouter } from './routers/datasets';
import { edgeRouter } from './routers/edge';
import { evalsRouter } from './routers/evals';
import { finetuneRouter } from './routers/finetune';
import { notificationsRouter } from './routers/notifications';
import { playgroundRouter } from './routers/playground';
import { runnerRouter } from './routers/runner';
import { teamsRouter } from './routers/teams';
import { uploadsRouter } from './routers/uploads';
import { webhooksRouter } from './routers/webhooks';
import { createCallerFactory, router } from './trpc';

export const appRouter = router({
  auth: authRouter,
  adapters: adaptersRouter,
  baseModels: baseModelsRouter,
  datasets: datasetsRouter,
  edge: edgeRouter,
  finetune: finetuneRouter,
  evals: evalsRouter,
  playground: playgroundRouter,
  runner: runnerRouter,
  teams: teamsRouter,
  uploads: uploadsRouter,
  notifications: notificationsRouter,
  webhooks: webhooksRouter,
});

export type AppRouter = typeof appRouter;
export const createCaller = createCallerFactory(appRouter);
