"""Alert delivery: events to the people and systems that must hear of them (issue 15 item 3, docs/alerts.md).

Ingest writes one outbox row per (subscription, event) in the batch's own transaction (storage/writes.py);
`skylane alerts` runs `worker.AlertWorker`, which claims due rows, sends them through a channel and marks them.
One module per channel (webhook, wecom, dingtalk, mail) behind one interface (channel.py), registered in
channels.py; the texts in render.py; the SQL in store.py.
"""
