"""PostgreSQL/TimescaleDB storage: schema migrations, batched COPY writes and the API's queries."""
