"""Dataset and model card templates (`*.md.jinja`), rendered through huggingface_hub's card classes."""
