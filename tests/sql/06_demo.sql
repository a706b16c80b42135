-- The demo (make demo) keeps working and keeps telling the same story.
.read sql/demo.sql
