"""Storage tiers behind one narrow protocol: memory (L1), Redis (L2) and the tiered pair."""
