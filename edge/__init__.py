"""The line-side service: frame sources, pipeline, storage, REST API and live page. No torch."""
