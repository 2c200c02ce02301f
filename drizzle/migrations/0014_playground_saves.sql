CREATE TABLE "playground_saves" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" uuid NOT NULL,
	"adapter_version_id" integer NOT NULL,
	"prompt" text NOT NULL,
	"temperature" double precision NOT NULL,
	"max_tokens" integer NOT NULL,
	"seed" bigint NOT NULL,
	"base_output" text NOT NULL,
	"adapter_output" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "playground_saves" ADD CONSTRAINT "playground_saves_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "playground_saves" ADD CONSTRAINT "playground_saves_adapter_version_id_adapter_versions_id_fk" FOREIGN KEY ("adapter_version_id") REFERENCES "public"."adapter_versions"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "playground_saves_user" ON "playground_saves" USING btree ("user_id","created_at");