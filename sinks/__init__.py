"""Parquet writer and DuckDB catalog: where rows become durable, and queryable with SQL."""
