-- owner: ingest
-- Source order keys now carry microseconds (HL7 MSH-7 allows 1/10 000 s) and a sequence or numeric control
-- id after the time: widen the millisecond keys written before, so old and new keys compare by time.
UPDATE source_times SET source_time = substr(source_time, 1, 23) || '000' || substr(source_time, 24)
WHERE substr(source_time, 24, 1) = 'Z';
