"""slack-imagine core: sessions, generations, the job engine and the providers, without Slack."""
