"""One module per exchange; `python -m workers.<exchange>` runs its worker process."""
