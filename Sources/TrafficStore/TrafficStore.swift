// Persistence lands with the store issue.
