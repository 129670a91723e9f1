"""The agent's work service: it takes processing jobs from every server over the reverse `Work`
stream, runs them through the executor pool and sends their results back."""
