ALTER TABLE "adapter_versions" ADD COLUMN "yanked_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "adapter_versions" ADD COLUMN "yank_reason" text;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "deprecated_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "deprecation_message" text;--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "replaced_by" text;