DROP INDEX "adapters_fulltext";--> statement-breakpoint
ALTER TABLE "adapters" ADD COLUMN "search_vector" "tsvector" GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED;--> statement-breakpoint
CREATE INDEX "adapters_search_vector" ON "adapters" USING gin ("search_vector");