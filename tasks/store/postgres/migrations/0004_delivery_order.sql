-- A run's deliveries go out in order (Store.ClaimDueDeliveries): seq numbers
-- them from 1 within their run, and a delivery waits while an earlier one
-- of its run is pending. Existing deliveries are numbered by creation.
ALTER TABLE deliveries ADD COLUMN seq BIGINT NOT NULL DEFAULT 0;
UPDATE deliveries SET seq = (SELECT COUNT(*) FROM deliveries p
	WHERE p.run = deliveries.run AND (p.created_at, p.id) <= (deliveries.created_at, deliveries.id));
DROP INDEX deliveries_run;
CREATE INDEX deliveries_run ON deliveries (run, seq, id);
