"""Query rewrites: rephrase detection, absorbing-chain mining, the online rewriter and their evaluation."""
