"""Kafka plumbing below the pipeline: the embedded broker, topics, the producer, drain watching."""
