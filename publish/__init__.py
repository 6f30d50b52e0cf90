"""The publisher: dataset versions, checkpoints and their cards to the Hugging Face Hub."""
