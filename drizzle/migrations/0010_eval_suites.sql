CREATE TABLE "eval_suite_tasks" (
	"suite_id" text NOT NULL,
	"suite_version" integer NOT NULL,
	"task_id" text NOT NULL,
	"task_version" integer NOT NULL,
	"num_fewshot" integer NOT NULL,
	"item_limit" integer,
	"position" integer NOT NULL,
	CONSTRAINT "eval_suite_tasks_suite_id_suite_version_task_id_pk" PRIMARY KEY("suite_id","suite_version","task_id")
);
--> statement-breakpoint
CREATE TABLE "eval_suites" (
	"id" text NOT NULL,
	"version" integer NOT NULL,
	"display_name" text NOT NULL,
	"description" text NOT NULL,
	"domain" text NOT NULL,
	"seed" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "eval_suites_id_version_pk" PRIMARY KEY("id","version")
);
--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "acc_norm" double precision;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "acc_norm_stderr" double precision;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "macro_f1" double precision;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "harness_version" text;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "num_fewshot" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "seed" integer;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "task_config_hash" text;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "suite_id" text;--> statement-breakpoint
ALTER TABLE "eval_results" ADD COLUMN "suite_version" integer;--> statement-breakpoint
ALTER TABLE "eval_suite_tasks" ADD CONSTRAINT "eval_suite_tasks_task_id_benchmark_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."benchmark_tasks"("id") ON DELETE no action ON UPDATE no action;