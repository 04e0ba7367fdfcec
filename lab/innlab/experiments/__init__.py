"""The paper's pipelines at CPU scale, built on the public API only."""
