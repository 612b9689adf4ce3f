"""What is built from stored readings for billing and the market: consumption buckets and макет 80020."""
