"""Portal Links: send an app's signed-in users into their Stripe customer portal."""
