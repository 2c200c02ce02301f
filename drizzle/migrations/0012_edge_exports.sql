CREATE TABLE "edge_exports" (
	"id" serial PRIMARY KEY NOT NULL,
	"version_id" integer NOT NULL,
	"job_id" uuid NOT NULL,
	"files" jsonb NOT NULL,
	"manifest" jsonb NOT NULL,
	"report" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "edge_exports_job_id_unique" UNIQUE("job_id")
);
--> statement-breakpoint
ALTER TABLE "edge_exports" ADD CONSTRAINT "edge_exports_version_id_adapter_versions_id_fk" FOREIGN KEY ("version_id") REFERENCES "public"."adapter_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "edge_exports" ADD CONSTRAINT "edge_exports_job_id_jobs_id_fk" FOREIGN KEY ("job_id") REFERENCES "public"."jobs"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "edge_exports_version" ON "edge_exports" USING btree ("version_id","id");