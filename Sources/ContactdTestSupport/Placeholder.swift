enum _PlaceholderContactdTestSupport {}
