-- A drone's later approval supersedes its earlier approvals that overlap it in time: decision 'superseded',
-- and by which clearance. Earlier overlapping approvals stored before this migration are superseded by the
-- first later approval of the same drone that overlaps them, as the API now does at decision time.
ALTER TABLE clearances ADD COLUMN IF NOT EXISTS superseded_by uuid;

UPDATE clearances c SET decision = 'superseded', superseded_by = (
        SELECT n.id FROM clearances n
        WHERE n.uav_id = c.uav_id AND n.decision = 'approved' AND n.created_at > c.created_at
          AND n.start_time < c.end_time AND n.end_time > c.start_time
        ORDER BY n.created_at, n.id LIMIT 1)
    WHERE c.decision = 'approved' AND c.uav_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM clearances n
        WHERE n.uav_id = c.uav_id AND n.decision = 'approved' AND n.created_at > c.created_at
          AND n.start_time < c.end_time AND n.end_time > c.start_time);

-- a drone's open approvals (supersede, what to announce) and an owner's (the quota of open approvals)
CREATE INDEX IF NOT EXISTS clearances_approved_uav ON clearances (uav_id, end_time) WHERE decision = 'approved';
CREATE INDEX IF NOT EXISTS clearances_approved_owner ON clearances (owner, end_time) WHERE decision = 'approved';
