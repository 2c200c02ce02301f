import http from 'node:http';
import type { Logger } from 'pino';
import { renderPrometheus } from '../../lib/prometheus';

/** Counters of one runner process, served in the Prometheus text format. */
export class RunnerMetrics {
  claims = 0;
  claimErrors = 0;
  jobs = new Map<string, number>();
  jobSeconds = 0;
  running = 0;
  // Milliseconds since the epoch of the last heartbeat the app accepted; 0 before the first.
  lastHeartbeat = 0;

  jobEnded(outcome: string, seconds: number): void {
    this.jobs.set(outcome, (this.jobs.get(outcome) ?? 0) + 1);
    this.jobSeconds += seconds;
  }

  render(runner: string): string {
    const labels = { runner };
    return renderPrometheus([
      { name: 'adapters_runner_claims_total', help: 'Claim calls that reached the app.', type: 'counter', samples: [{ name: 'adapters_runner_claims_total', labels, value: this.claims }] },
      { name: 'adapters_runner_claim_errors_total', help: 'Claim calls that failed (app unreachable or erroring).', type: 'counter', samples: [{ name: 'adapters_runner_claim_errors_total', labels, value: this.claimErrors }] },
      {
        name: 'adapters_runner_jobs_total', help: 'Jobs this runner ended, by outcome.', type: 'counter',
        samples: [...this.jobs].map(([outcome, count]) => ({ name: 'adapters_runner_jobs_total', labels: { ...labels, outcome }, value: count })),
      },
      { name: 'adapters_runner_job_seconds_total', help: 'Seconds spent running jobs.', type: 'counter', samples: [{ name: 'adapters_runner_job_seconds_total', labels, value: this.jobSeconds }] },
      { name: 'adapters_runner_running_jobs', help: 'Jobs running now (0 or 1).', type: 'gauge', samples: [{ name: 'adapters_runner_running_jobs', labels, value: this.running }] },
      {
        name: 'adapters_runner_heartbeat_lag_seconds', help: 'Seconds since the app last accepted a heartbeat of the running job (NaN when idle).', type: 'gauge',
        samples: [{ name: 'adapters_runner_heartbeat_lag_seconds', labels, value: this.running && this.lastHeartbeat ? (Date.now() - this.lastHeartbeat) / 1000 : NaN }],
      },
    ]);
  }
}

/** Serves GET /metrics on 127.0.0.1 or `host`; returns the server so the caller can close it. */
export function serveMetrics(metrics: RunnerMetrics, runner: string, port: number, host: string, log: Logger): http.Server {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || request.url !== '/metrics') {
      response.writeHead(404).end('not found; metrics are at GET /metrics\n');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(metrics.render(runner));
  });
  server.on('error', (error) => log.error({ err: error, port }, 'metrics server failed'));
  server.listen(port, host, () => log.info({ port, host }, 'metrics served at /metrics'));
  return server;
}
