CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
CREATE TABLE "adapter_redirects" (
	"namespace" text NOT NULL,
	"name" text NOT NULL,
	"adapter_id" uuid NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
DROP INDEX "adapters_search";--> statement-breakpoint
DROP INDEX "adapters_namespace_name";--> statement-breakpoint
ALTER TABLE "adapter_versions" ADD COLUMN "label" text;--> statement-breakpoint
ALTER TABLE "adapter_versions" ADD COLUMN "changelog" text;--> statement-breakpoint
ALTER TABLE "adapter_versions" ADD COLUMN "card_metadata" jsonb DEFAULT '{}'::jsonb NOT NULL;--> statement-breakpoint
ALTER TABLE "adapter_versions" ADD COLUMN "size_bytes" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "deleted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "purged_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "latest_version" integer;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "rank" integer;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "peft_type" text;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "task_type" text;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "license" text;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "tags" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "size_bytes" bigint;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "best_score" double precision;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "search_text" text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE "adapter_redirects" ADD CONSTRAINT "adapter_redirects_adapter_id_adapters_id_fk" FOREIGN KEY ("adapter_id") REFERENCES "public"."adapters"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "adapter_redirects_name" ON "adapter_redirects" USING btree ("namespace","name");--> statement-breakpoint
CREATE INDEX "adapters_fulltext" ON "adapters" USING gin (to_tsvector('english', "search_text"));--> statement-breakpoint
CREATE INDEX "adapters_name_trigram" ON "adapters" USING gin ("name" gin_trgm_ops);--> statement-breakpoint
CREATE INDEX "adapters_listed_updated" ON "adapters" USING btree ("updated_at","id") WHERE "adapters"."latest_version" is not null and "adapters"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "adapters_listed_downloads" ON "adapters" USING btree ("downloads","id") WHERE "adapters"."latest_version" is not null and "adapters"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "adapters_listed_likes" ON "adapters" USING btree ("likes","id") WHERE "adapters"."latest_version" is not null and "adapters"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "adapters_listed_score" ON "adapters" USING btree (coalesce("best_score", -1),"id") WHERE "adapters"."latest_version" is not null and "adapters"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "adapters_base_domain" ON "adapters" USING btree ("base_model_id","domain");--> statement-breakpoint
CREATE UNIQUE INDEX "adapters_namespace_name" ON "adapters" USING btree ("namespace_id","name") WHERE "adapters"."deleted_at" is null;--> statement-breakpoint
UPDATE "adapter_versions" v SET "size_bytes" = coalesce((SELECT sum(f."size") FROM "adapter_files" f WHERE f."version_id" = v."id"), 0);--> statement-breakpoint
UPDATE "adapters" a SET
  "latest_version" = l."version",
  "rank" = (l."config_summary"->>'rank')::integer,
  "peft_type" = l."config_summary"->>'peftType',
  "task_type" = l."config"->>'task_type',
  "size_bytes" = l."size_bytes",
  "best_score" = (SELECT max(e."accuracy") FROM "eval_results" e JOIN "adapter_versions" ev ON ev."id" = e."adapter_version_id" WHERE ev."adapter_id" = a."id"),
  "search_text" = a."name" || ' ' || a."description"
FROM (SELECT DISTINCT ON ("adapter_id") * FROM "adapter_versions" WHERE "yanked_at" IS NULL ORDER BY "adapter_id", "version" DESC) l
WHERE l."adapter_id" = a."id";