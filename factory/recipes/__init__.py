"""What orchestrates plugins: the recipe runner (`factory run`) and loops that alternate generation and training
(SPIN iterations; prune -> rewrite -> fine-tune). It sits above schemes, judges and trainers and is made of the
same cached, versioned, resumable stages; nothing below imports it."""
