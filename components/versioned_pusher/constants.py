"""The contract between the VersionedPusher and what reads its PushedModel artifact (the run's closing summary)."""

# String custom property of a PushedModel that was blessed but not pushed: why, in one sentence.
NOT_PUSHED_REASON = "not_pushed_reason"
