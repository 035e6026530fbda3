<?xml version="1.0"?>
<!-- SPDX-License-Identifier: LGPL-2.1-or-later -->
<!--
  The DocBook manpages stylesheet with bufbroker's settings. The import
  resolves through the XML catalog to the local docbook-xsl copy (run
  xsltproc with nonet). Parameter bufbroker.version goes into the footer.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:import href="http://docbook.sourceforge.net/release/xsl/current/manpages/docbook.xsl"/>

  <xsl:param name="bufbroker.version" select="''"/>

  <!-- No "Note: Writing foo.8" chatter: the tests want a silent stderr. -->
  <xsl:param name="man.output.quietly" select="1"/>
  <xsl:param name="refentry.meta.get.quietly" select="1"/>
  <!-- The whole character map, not the subset: arrows and the like become
       groff escapes instead of raw UTF-8 that groff warns about. -->
  <xsl:param name="man.charmap.use.subset" select="0"/>
  <xsl:param name="funcsynopsis.style" select="'ansi'"/>
  <xsl:param name="man.authors.section.enabled" select="0"/>
  <xsl:param name="man.copyright.section.enabled" select="0"/>

  <xsl:template name="get.refentry.version">
    <xsl:value-of select="$bufbroker.version"/>
  </xsl:template>
</xsl:stylesheet>
