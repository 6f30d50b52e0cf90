"""The publisher: dataset versions, checkpoints and their cards to the Hugging Face Hub.

    plan.py         what a publish will do (repo, files with hashes, card, tags), worked out offline
    dataset.py      plan a dataset version: Parquet shards under data/, a dataset card (PublishOptions)
    checkpoint.py   plan a `factory train` checkpoint directory: weights, tokenizer, a model card
    lineage.py      the manifests upstream of a version, shaped for the cards
    papers.py       the papers the cards cite
    decontam.py     the n-gram decontamination gate
    guard.py        no secret in any file about to be pushed
    hub.py          HfApi with retries, repo checks, one atomic commit, tags
    collections.py  Hub collections (the zoo's shelves)
    zoo.py          the local log of what was published (`factory zoo list`)
    publisher.py    run a plan: guard, hub, collection, log

Docs: docs/publishing.md. Reads the store and checkpoint directories; imports no trainer, scheme or judge.
"""
